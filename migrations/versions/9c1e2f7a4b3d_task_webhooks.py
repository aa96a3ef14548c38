"""task webhooks: the URL and delivery state on tasks, the signing secret on users

Revision ID: 9c1e2f7a4b3d
Revises: 5b34f664aea9
Create Date: 2026-11-25 10:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '9c1e2f7a4b3d'
down_revision = '5b34f664aea9'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('webhook_secret', sa.String(length=64), nullable=True))

    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('webhook_url', sa.String(length=2048), nullable=True))
        batch_op.add_column(sa.Column('webhook_status', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('webhook_attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('webhook_response', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('webhook_delivered_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_tasks_webhook_status'), ['webhook_status'], unique=False)


def downgrade():
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tasks_webhook_status'))
        batch_op.drop_column('webhook_delivered_at')
        batch_op.drop_column('webhook_response')
        batch_op.drop_column('webhook_attempts')
        batch_op.drop_column('webhook_status')
        batch_op.drop_column('webhook_url')

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('webhook_secret')
