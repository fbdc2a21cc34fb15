"""GPU reviews (docs/api.md): only renters review, one review per booking, exact aggregates.

The aggregates on the GPU row (`rating_sum`, `total_reviews`) change only by an atomic
`UPDATE ... SET x = x + :n ... RETURNING`, in the transaction that inserts the review, so they
stay exact under concurrent posts on both databases. One review per booking is the unique index on
`reviews.booking_id`; a post that loses the race for a booking tries the client's next one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from coordinator_stub.core.clock import new_id
from coordinator_stub.db.models import Booking, Gpu, Review
from coordinator_stub.errors import ConflictError, ForbiddenError, NotFoundError

_MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class ReviewAdded:
    review: Review
    rating_sum: int
    total_reviews: int


def live_gpu(session: Session, gpu_id: str) -> Gpu:
    gpu = session.scalars(select(Gpu).where(Gpu.id == gpu_id, Gpu.deleted_at.is_(None))).first()
    if gpu is None:
        raise NotFoundError(f"GPU {gpu_id} not found")
    return gpu


def add_review(
    session: Session,
    *,
    gpu_id: str,
    client_id: str,
    rating: int,
    comment: str | None,
    now: datetime,
) -> ReviewAdded:
    """Review the client's oldest unreviewed booking of this GPU."""
    live_gpu(session, gpu_id)
    mine = select(Booking.id).where(Booking.gpu_id == gpu_id, Booking.client_id == client_id)
    if session.scalar(mine.limit(1)) is None:
        raise ForbiddenError("only a client who booked this GPU may review it")
    for _ in range(_MAX_ATTEMPTS):
        booking_id = session.scalar(
            mine.where(~exists().where(Review.booking_id == Booking.id))
            .order_by(Booking.created_at, Booking.id)
            .limit(1)
        )
        if booking_id is None:
            break
        review = Review(
            id=new_id("rv_"),
            gpu_id=gpu_id,
            booking_id=booking_id,
            client_id=client_id,
            rating=rating,
            comment=comment,
            created_at=now,
        )
        try:
            with session.begin_nested():
                session.add(review)
                session.flush()
        except IntegrityError:
            continue  # a concurrent post took this booking; look for the next one
        rating_sum, total_reviews = session.execute(
            update(Gpu)
            .where(Gpu.id == gpu_id)
            .values(rating_sum=Gpu.rating_sum + rating, total_reviews=Gpu.total_reviews + 1)
            .returning(Gpu.rating_sum, Gpu.total_reviews)
            .execution_options(synchronize_session=False)
        ).one()
        return ReviewAdded(review=review, rating_sum=rating_sum, total_reviews=total_reviews)
    raise ConflictError("every booking of yours on this GPU has been reviewed already")


def list_reviews(session: Session, *, gpu_id: str, limit: int, offset: int) -> list[Review]:
    """Newest first."""
    return list(
        session.scalars(
            select(Review)
            .where(Review.gpu_id == gpu_id)
            .order_by(Review.created_at.desc(), Review.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )
