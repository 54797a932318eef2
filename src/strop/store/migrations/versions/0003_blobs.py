"""blobs: reference counts of stored bytes

Revision ID: 0003
Revises: 0002
Created: 2026-12-04 04:46:27.736173
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('blobs',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('refs', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('sha256')
    )
    # Count what the files already stored name (several uploads may share bytes).
    op.execute("INSERT INTO blobs (sha256, refs) SELECT sha256, count(*) FROM files "
               "GROUP BY sha256")


def downgrade() -> None:
    op.drop_table('blobs')
