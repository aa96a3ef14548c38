"""work pixels on tasks and daily usage: a plan's megapixels per month count the work an operation does

A task's work (Operation.work_pixels) is fixed when it is created and added to the day's usage when it finishes.
Tasks and usage from before this revision counted their photos' pixels, so that is their work.

Revision ID: a1d6e3f9c2b8
Revises: f5a2c8d1e7b4
Create Date: 2026-12-06 06:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a1d6e3f9c2b8'
down_revision = 'f5a2c8d1e7b4'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('work_pixels', sa.BigInteger(), nullable=False, server_default='0'))
    with op.batch_alter_table('daily_usage', schema=None) as batch_op:
        batch_op.add_column(sa.Column('work_pixels', sa.BigInteger(), nullable=False, server_default='0'))
    op.execute('UPDATE tasks SET work_pixels = CAST(input_width AS BIGINT) * input_height')
    op.execute('UPDATE daily_usage SET work_pixels = pixels_in')


def downgrade():
    with op.batch_alter_table('daily_usage', schema=None) as batch_op:
        batch_op.drop_column('work_pixels')
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_column('work_pixels')
