"""task inputs_clean: whether the stored photo and attachments are already clean copies

An upload is stored as received and its job cleans it in the worker; every task stored before this revision was
cleaned at upload, hence the server default.

Revision ID: c5e8a2d4f1b7
Revises: 9665b08a2872
Create Date: 2026-12-06 06:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c5e8a2d4f1b7'
down_revision = '9665b08a2872'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('inputs_clean', sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade():
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_column('inputs_clean')
