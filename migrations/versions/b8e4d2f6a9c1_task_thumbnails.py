"""task thumbnails: small previews of the photo and the result, for the history

Tasks from before this revision have none; the history queues a job that makes them (jobs/thumbnails.py).

Revision ID: b8e4d2f6a9c1
Revises: a1d6e3f9c2b8
Create Date: 2026-12-06 08:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b8e4d2f6a9c1'
down_revision = 'a1d6e3f9c2b8'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('thumbnails', sa.JSON(), server_default='{}', nullable=False))
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        # The default only filled the rows that were there; the app always writes the column itself.
        batch_op.alter_column('thumbnails', server_default=None)


def downgrade():
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_column('thumbnails')
