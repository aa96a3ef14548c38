"""task background image: the stored key and size of the image behind the cutout

Revision ID: d4b8a1f06c2e
Revises: 9c1e2f7a4b3d
Create Date: 2026-11-25 10:35:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd4b8a1f06c2e'
down_revision = '9c1e2f7a4b3d'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('background_key', sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column('background_size', sa.BigInteger(), server_default='0', nullable=False))


def downgrade():
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_column('background_size')
        batch_op.drop_column('background_key')
