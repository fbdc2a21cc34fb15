"""GPU reviews (docs/api.md): public reading, posting by clients who booked the GPU."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from coordinator_stub.core.clock import rfc3339
from coordinator_stub.deps import ClientDep, DbDep, NowDep, SettingsDep
from coordinator_stub.market import reviews
from coordinator_stub.market.gpu_view import average_rating
from coordinator_stub.routes.inputs import Limit, LongText, Offset, check_gpu_id

router = APIRouter(tags=["marketplace_gpu"])


class ReviewIn(BaseModel):
    rating: int = Field(ge=1, le=5)
    comment: LongText | None = None


class ReviewAddedOut(BaseModel):
    status: Literal["review_added"] = "review_added"
    gpu_id: str
    review_id: str
    booking_id: str
    average_rating: float
    total_reviews: int


class ReviewOut(BaseModel):
    review_id: str
    rating: int
    comment: str | None
    user: str
    date: str


class ReviewsOut(BaseModel):
    gpu_id: str
    average_rating: float
    total_reviews: int
    reviews: list[ReviewOut]


@router.get("/gpu/{gpu_id}/reviews", responses={404: {"description": "unknown GPU"}})
def list_gpu_reviews(
    gpu_id: str,
    db: DbDep,
    limit: Limit = 10,
    offset: Offset = 0,
) -> ReviewsOut:
    """The GPU's reviews, newest first, at most `limit` of them."""
    check_gpu_id(gpu_id)
    with db.read() as session:
        gpu = reviews.live_gpu(session, gpu_id)
        rows = reviews.list_reviews(session, gpu_id=gpu_id, limit=limit, offset=offset)
        return ReviewsOut(
            gpu_id=gpu_id,
            average_rating=average_rating(gpu.rating_sum, gpu.total_reviews),
            total_reviews=gpu.total_reviews,
            reviews=[
                ReviewOut(
                    review_id=row.id,
                    rating=row.rating,
                    comment=row.comment,
                    user=row.client_id,
                    date=rfc3339(row.created_at) or "",
                )
                for row in rows
            ],
        )


@router.post(
    "/gpu/{gpu_id}/reviews",
    status_code=201,
    responses={
        403: {
            "description": "you never booked this GPU, or no booking of yours has run "
            "review_min_run_s or completed yet"
        },
        404: {"description": "unknown GPU"},
        409: {"description": "every booking of yours on it is reviewed"},
    },
)
def add_gpu_review(
    gpu_id: str, body: ReviewIn, client: ClientDep, db: DbDep, now: NowDep, settings: SettingsDep
) -> ReviewAddedOut:
    """Review a GPU you booked: one review per booking that has run `review_min_run_s` (10
    minutes by default) or completed (`comment` may be null)."""
    check_gpu_id(gpu_id)
    with db.write() as session:
        added = reviews.add_review(
            session,
            gpu_id=gpu_id,
            client_id=client.subject,
            rating=body.rating,
            comment=body.comment,
            now=now,
            min_run_s=settings.review_min_run_s,
        )
    return ReviewAddedOut(
        gpu_id=gpu_id,
        review_id=added.review.id,
        booking_id=added.review.booking_id,
        average_rating=average_rating(added.rating_sum, added.total_reviews),
        total_reviews=added.total_reviews,
    )
