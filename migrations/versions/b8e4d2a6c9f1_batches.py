"""batches: many photos uploaded at once with one operation, each photo its own task

Revision ID: b8e4d2a6c9f1
Revises: b8c4e1f7a2d9
Create Date: 2026-12-06 08:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b8e4d2a6c9f1'
down_revision = 'b8c4e1f7a2d9'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'batches',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('operation', sa.String(length=64), nullable=False),
        sa.Column('options', sa.JSON(), nullable=False),
        sa.Column('archive_name', sa.String(length=255), nullable=False),
        sa.Column('skipped', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_batches_user_id'), ['user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_batches_created_at'), ['created_at'], unique=False)
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('batch_id', sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f('ix_tasks_batch_id'), ['batch_id'], unique=False)
        batch_op.create_foreign_key('fk_tasks_batch_id_batches', 'batches', ['batch_id'], ['id'],
                                    ondelete='SET NULL')


def downgrade():
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_constraint('fk_tasks_batch_id_batches', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_tasks_batch_id'))
        batch_op.drop_column('batch_id')
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_batches_created_at'))
        batch_op.drop_index(batch_op.f('ix_batches_user_id'))
    op.drop_table('batches')
