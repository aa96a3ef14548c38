"""operations on tasks: which operation a task runs, its stage, attachments and extra outputs; storage per account

Revision ID: a7e3c5d9f2b1
Revises: e2c7f9a8b1d3
Create Date: 2026-12-02 02:00:00.000000

"""
import json

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a7e3c5d9f2b1'
down_revision = 'e2c7f9a8b1d3'
branch_labels = None
depends_on = None

tasks = sa.table(
    'tasks',
    sa.column('id', sa.String), sa.column('background_key', sa.String), sa.column('background_size', sa.BigInteger),
    sa.column('attachments', sa.JSON), sa.column('attachments_size', sa.BigInteger),
    sa.column('input_content_type', sa.String),
)
MEDIA_TYPES = {'.jpg': 'image/jpeg', '.png': 'image/png', '.webp': 'image/webp'}


def upgrade():
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('operation', sa.String(length=64), server_default='remove_background',
                                      nullable=False))
        batch_op.add_column(sa.Column('stage', sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column('attachments', sa.JSON(), server_default='{}', nullable=False))
        batch_op.add_column(sa.Column('attachments_size', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('extras', sa.JSON(), server_default='{}', nullable=False))
        batch_op.add_column(sa.Column('extras_size', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('output_pixels', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.create_index('ix_tasks_operation', ['operation'], unique=False)
    connection = op.get_bind()
    rows = connection.execute(sa.select(tasks.c.id, tasks.c.background_key, tasks.c.background_size)
                              .where(tasks.c.background_key.is_not(None))).all()
    for task_id, key, size in rows:
        suffix = key[key.rfind('.'):] if '.' in key else ''
        attachment = {'bg_image': {'key': key, 'media_type': MEDIA_TYPES.get(suffix, 'application/octet-stream'),
                                   'size': size or 0}}
        connection.execute(tasks.update().where(tasks.c.id == task_id)
                           .values(attachments=attachment, attachments_size=size or 0))
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_column('background_size')
        batch_op.drop_column('background_key')
        # The default only filled the rows that were there; the app always writes these columns itself (and
        # PostgreSQL cannot compare JSON defaults, which alembic's autogenerate would try).
        batch_op.alter_column('attachments', server_default=None)
        batch_op.alter_column('extras', server_default=None)
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('storage_bytes', sa.BigInteger(), server_default='0', nullable=False))
    op.execute("UPDATE users SET storage_bytes = (SELECT COALESCE(SUM(input_size + attachments_size + result_size "
               "+ extras_size), 0) FROM tasks WHERE tasks.user_id = users.id)")


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('storage_bytes')
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('background_key', sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column('background_size', sa.BigInteger(), server_default='0', nullable=False))
    connection = op.get_bind()
    table = sa.table('tasks', sa.column('id', sa.String), sa.column('attachments', sa.JSON),
                     sa.column('background_key', sa.String), sa.column('background_size', sa.BigInteger))
    for task_id, attachments in connection.execute(sa.select(table.c.id, table.c.attachments)).all():
        attachment = (json.loads(attachments) if isinstance(attachments, str) else attachments or {}).get('bg_image')
        if attachment:
            connection.execute(table.update().where(table.c.id == task_id)
                               .values(background_key=attachment['key'], background_size=attachment['size']))
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_operation')
        batch_op.drop_column('output_pixels')
        batch_op.drop_column('extras_size')
        batch_op.drop_column('extras')
        batch_op.drop_column('attachments_size')
        batch_op.drop_column('attachments')
        batch_op.drop_column('stage')
        batch_op.drop_column('operation')
