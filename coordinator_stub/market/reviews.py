"""GPU reviews (docs/api.md): only renters review, one review per booking, exact aggregates.

The aggregates on the GPU row (`rating_sum`, `total_reviews`) change only by an atomic
`UPDATE ... SET x = x + :n ... RETURNING`, in the transaction that inserts the review, so they
stay exact under concurrent posts on both databases. One review per booking is the unique index on
`reviews.booking_id`; a post that loses the race for a booking tries the client's next one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from coordinator_stub.core.clock import new_id
from coordinator_stub.db.models import ACTIVE, Booking, Gpu, Review
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
    min_run_s: float = 0.0,
) -> ReviewAdded:
    """Review the client's oldest unreviewed booking of this GPU that earned the right.

    A booking earns it by completing, or by having run `min_run_s` (settings.review_min_run_s)
    — so a review costs at least that much real use, and a stream of near-free bookings buys
    none.
    """
    live_gpu(session, gpu_id)
    mine = select(Booking.id).where(Booking.gpu_id == gpu_id, Booking.client_id == client_id)
    if session.scalar(mine.limit(1)) is None:
        raise ForbiddenError("only a client who booked this GPU may review it")
    for _ in range(_MAX_ATTEMPTS):
        unreviewed = session.execute(
            select(
                Booking.id, Booking.status, Booking.start_time, Booking.end_time, Booking.ended_at
            )
            .where(Booking.gpu_id == gpu_id, Booking.client_id == client_id)
            .where(~exists().where(Review.booking_id == Booking.id))
            .order_by(Booking.created_at, Booking.id)
        ).all()
        if not unreviewed:
            break
        booking_id = next(
            (row.id for row in unreviewed if _earned_review(row, now, min_run_s)), None
        )
        if booking_id is None:
            raise ForbiddenError(
                f"a booking gives the right to review once it has run {min_run_s:g} s or "
                "completed; none of yours on this GPU has yet"
            )
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


def _earned_review(booking: Any, now: datetime, min_run_s: float) -> bool:
    """Completed (or past its end, not yet settled), or ran `min_run_s` before it ended."""
    end_time: datetime = booking.end_time
    if booking.status == "completed" or (booking.status == ACTIVE and end_time <= now):
        return True
    ended: datetime | None = booking.ended_at
    start: datetime = booking.start_time
    ran = min(end_time, now if ended is None else ended) - start
    return ran.total_seconds() >= min_run_s


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
