"""task outputs in one mapping: name -> key, media type and size, the main one ("result") first

Replaces the result_* columns and the extras mapping beside them; the bytes they add up to stay the same, so the
accounts' storage counters are untouched.

Revision ID: 9665b08a2872
Revises: b3f1d7c2e9a4
Create Date: 2026-12-06 05:30:00.000000

"""
import json

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '9665b08a2872'
down_revision = 'b3f1d7c2e9a4'
branch_labels = None
depends_on = None

MAIN = 'result'
tasks = sa.table(
    'tasks',
    sa.column('id', sa.String), sa.column('outputs', sa.JSON),
    sa.column('result_key', sa.String), sa.column('result_content_type', sa.String),
    sa.column('result_size', sa.BigInteger), sa.column('extras', sa.JSON), sa.column('extras_size', sa.BigInteger),
)


def _mapping(value):
    """Return a JSON column's value as a dict, whether the driver decoded it or not."""
    return (json.loads(value) if isinstance(value, str) else value) or {}


def upgrade():
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('outputs', sa.JSON(), server_default='{}', nullable=False))
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(tasks.c.id, tasks.c.result_key, tasks.c.result_content_type, tasks.c.result_size, tasks.c.extras)
        .where(sa.or_(tasks.c.result_key.is_not(None), tasks.c.extras_size > 0))).all()
    for task_id, key, media_type, size, extras in rows:
        outputs = {MAIN: {'key': key, 'media_type': media_type or 'application/octet-stream', 'size': size or 0}} \
            if key else {}
        outputs.update(_mapping(extras))
        connection.execute(tasks.update().where(tasks.c.id == task_id).values(outputs=outputs))
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_column('extras_size')
        batch_op.drop_column('extras')
        batch_op.drop_column('result_size')
        batch_op.drop_column('result_content_type')
        batch_op.drop_column('result_key')
        # The default only filled the rows that were there; the app always writes the column itself.
        batch_op.alter_column('outputs', server_default=None)


def downgrade():
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('result_key', sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column('result_content_type', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('result_size', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('extras', sa.JSON(), server_default='{}', nullable=False))
        batch_op.add_column(sa.Column('extras_size', sa.BigInteger(), server_default='0', nullable=False))
    connection = op.get_bind()
    for task_id, outputs in connection.execute(sa.select(tasks.c.id, tasks.c.outputs)).all():
        extras = _mapping(outputs)
        if not extras:
            continue
        main = extras.pop(MAIN, None) or {}
        connection.execute(tasks.update().where(tasks.c.id == task_id).values(
            result_key=main.get('key'), result_content_type=main.get('media_type'), result_size=main.get('size', 0),
            extras=extras, extras_size=sum(item['size'] for item in extras.values())))
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_column('outputs')
        # As the earlier revisions left them: the app writes these itself.
        batch_op.alter_column('result_size', server_default=None)
        batch_op.alter_column('extras', server_default=None)
