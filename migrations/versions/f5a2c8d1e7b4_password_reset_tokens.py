"""password reset tokens: one live link per account, kept as a SHA-256 digest

Revision ID: f5a2c8d1e7b4
Revises: c5e8a2d4f1b7
Create Date: 2026-12-06 06:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f5a2c8d1e7b4'
down_revision = 'c5e8a2d4f1b7'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'password_reset_tokens',
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('token_hash'),
        sa.UniqueConstraint('user_id'),
    )


def downgrade():
    op.drop_table('password_reset_tokens')
