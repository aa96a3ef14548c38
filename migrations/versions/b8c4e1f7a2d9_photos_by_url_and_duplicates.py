"""photos by URL and duplicates: a task's source URLs, its duplicate key and the task whose outputs it reuses

Revision ID: b8c4e1f7a2d9
Revises: b8e4d2f6a9c1
Create Date: 2026-12-06 08:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b8c4e1f7a2d9'
down_revision = 'b8e4d2f6a9c1'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_urls', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('duplicate_key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('reused_from', sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f('ix_tasks_duplicate_key'), ['duplicate_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_tasks_reused_from'), ['reused_from'], unique=False)


def downgrade():
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tasks_reused_from'))
        batch_op.drop_index(batch_op.f('ix_tasks_duplicate_key'))
        batch_op.drop_column('reused_from')
        batch_op.drop_column('duplicate_key')
        batch_op.drop_column('source_urls')
