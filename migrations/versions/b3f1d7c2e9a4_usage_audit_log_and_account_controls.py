"""usage per account, day and operation; the administrators' audit log; disabled accounts, quotas and plans

Revision ID: b3f1d7c2e9a4
Revises: a7e3c5d9f2b1
Create Date: 2026-12-02 02:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b3f1d7c2e9a4'
down_revision = 'a7e3c5d9f2b1'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('daily_usage',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('operation', sa.String(length=64), nullable=False),
    sa.Column('tasks', sa.Integer(), nullable=False),
    sa.Column('completed_tasks', sa.Integer(), nullable=False),
    sa.Column('pixels_in', sa.BigInteger(), nullable=False),
    sa.Column('pixels_out', sa.BigInteger(), nullable=False),
    sa.Column('processing_seconds', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'day', 'operation')
    )
    with op.batch_alter_table('daily_usage', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_daily_usage_day'), ['day'], unique=False)

    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_email', sa.String(length=254), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('target_user_id', sa.Integer(), nullable=True),
    sa.Column('target_task_id', sa.String(length=36), nullable=True),
    sa.Column('detail', sa.String(length=500), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['target_user_id'], ['users.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_target_user_id'), ['target_user_id'], unique=False)

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('quota_bytes', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('plan', sa.String(length=40), nullable=True))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('plan')
        batch_op.drop_column('quota_bytes')
        batch_op.drop_column('disabled_at')

    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_target_user_id'))
        batch_op.drop_index(batch_op.f('ix_audit_log_created_at'))
        batch_op.drop_index(batch_op.f('ix_audit_log_action'))
    op.drop_table('audit_log')

    with op.batch_alter_table('daily_usage', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_daily_usage_day'))
    op.drop_table('daily_usage')
