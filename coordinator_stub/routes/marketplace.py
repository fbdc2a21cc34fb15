"""Offers, miner-offers, stats and bids: the older marketplace endpoints (docs/api.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from coordinator_stub.core.clock import rfc3339
from coordinator_stub.core.money import MoneyIn, MoneyOut
from coordinator_stub.db.models import Bid
from coordinator_stub.deps import AdminDep, ClientDep, DbDep, NowDep, PrincipalDep, SettingsDep
from coordinator_stub.errors import NotFoundError, UnprocessableError
from coordinator_stub.market import offers
from coordinator_stub.routes.inputs import Limit, LongText, Name, Offset, Text, is_id_shaped

router = APIRouter(prefix="/v1/marketplace", tags=["marketplace"])

OfferStatus = Literal["open", "reserved", "closed"]
BidStatus = Literal["pending", "accepted", "rejected"]


class OfferOut(BaseModel):
    id: str
    provider: str
    gpu_model: str
    gpu_memory_gb: int
    gpu_count: int = Field(description="GPUs of this model that are online (booked or not)")
    capacity: int = Field(description="GPUs available now")
    price: MoneyOut
    price_per_hour: MoneyOut
    cuda_version: str | None
    region: str | None
    status: OfferStatus
    created_at: str
    updated_at: str
    attributes: dict[str, Any]


class OfferGpuOut(BaseModel):
    gpu_id: str
    model: str
    memory_gb: int
    price_per_hour: MoneyOut
    status: Literal["available", "booked", "offline"]
    region: str | None
    cuda_version: str | None


class MinerOfferOut(OfferOut):
    gpus: list[OfferGpuOut]


class SyncOffersOut(BaseModel):
    status: Literal["ok"] = "ok"
    created_offers: int
    updated_offers: int
    offer_ids: list[str]


class MarketStatsOut(BaseModel):
    totalOffers: int  # noqa: N815 (the legacy wire names)
    openCapacity: int  # noqa: N815
    averagePrice: MoneyOut  # noqa: N815
    activeBids: int  # noqa: N815


class BidIn(BaseModel):
    provider: Name
    capacity: int = Field(gt=0, le=1_000_000)
    price: MoneyIn = Field(description="AITBC per hour, > 0")
    notes: LongText | None = None


class BidOut(BaseModel):
    id: str
    client_id: str
    provider: str
    capacity: int
    price: MoneyOut
    notes: str | None
    status: BidStatus
    submitted_at: str


def _offer_fields(view: offers.OfferView) -> dict[str, Any]:
    offer = view.offer
    return {
        "id": offer.id,
        "provider": offer.provider,
        "gpu_model": offer.gpu_model,
        "gpu_memory_gb": view.memory_gb,
        "gpu_count": view.gpu_count,
        "capacity": view.capacity,
        "price": view.price,
        "price_per_hour": view.price,
        "cuda_version": offer.cuda_version,
        "region": offer.region,
        "status": view.status,
        "created_at": rfc3339(offer.created_at) or "",
        "updated_at": rfc3339(offer.updated_at) or "",
        "attributes": offer.attributes or {},
    }


def _bid_out(bid: Bid) -> BidOut:
    return BidOut(
        id=bid.id,
        client_id=bid.client_id,
        provider=bid.provider,
        capacity=bid.capacity,
        price=bid.price,
        notes=bid.notes,
        status=bid.status,
        submitted_at=rfc3339(bid.created_at) or "",
    )


@router.post("/sync-offers")
def sync_offers(_admin: AdminDep, db: DbDep, now: NowDep, settings: SettingsDep) -> SyncOffersOut:
    """One offer per (miner, exact GPU model); idempotent."""
    with db.write() as session:
        result = offers.sync_offers(session, now=now, settings=settings)
    return SyncOffersOut(
        created_offers=result.created_offers,
        updated_offers=result.updated_offers,
        offer_ids=result.offer_ids,
    )


@router.get("/offers")
def list_offers(
    db: DbDep,
    now: NowDep,
    settings: SettingsDep,
    status: OfferStatus | None = None,
    gpu_model: Annotated[Text | None, Query(max_length=128)] = None,
    price_max: MoneyIn | None = None,
    memory_min: float | None = Query(default=None, ge=0, le=1_000_000),
    region: Annotated[Text | None, Query(max_length=64)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[OfferOut]:
    """Offers with their live capacity and status, newest first; every filter is applied."""
    with db.read() as session:
        views = offers.list_offers(
            session,
            now=now,
            settings=settings,
            limit=limit,
            offset=offset,
            status=status,
            gpu_model=gpu_model,
            price_max=price_max,
            memory_min=memory_min,
            region=region,
        )
    return [OfferOut(**_offer_fields(view)) for view in views]


@router.get("/miner-offers")
def list_miner_offers(
    db: DbDep,
    now: NowDep,
    settings: SettingsDep,
    provider: Annotated[Text | None, Query(max_length=128)] = None,
    status: OfferStatus | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[MinerOfferOut]:
    """The offers with the details of their GPUs."""
    with db.read() as session:
        views = offers.list_offers(
            session,
            now=now,
            settings=settings,
            limit=limit,
            offset=offset,
            status=status,
            provider=provider,
        )
        gpus = offers.offer_gpus(session, views, now=now, settings=settings)
    return [
        MinerOfferOut(
            **_offer_fields(view),
            gpus=[
                OfferGpuOut(
                    gpu_id=gpu.id,
                    model=gpu.model,
                    memory_gb=gpu.memory_gb,
                    price_per_hour=gpu.price_per_hour,
                    status=status,
                    region=gpu.region,
                    cuda_version=gpu.cuda_version,
                )
                for gpu, status in gpus.get((view.offer.provider, view.offer.gpu_model), [])
            ],
        )
        for view in views
    ]


@router.get("/stats")
def get_market_stats(db: DbDep, now: NowDep, settings: SettingsDep) -> MarketStatsOut:
    """Totals computed from current data (no cache)."""
    with db.read() as session:
        stats = offers.market_stats(session, now=now, settings=settings)
    return MarketStatsOut(
        totalOffers=stats.total_offers,
        openCapacity=stats.open_capacity,
        averagePrice=stats.average_price,
        activeBids=stats.active_bids,
    )


@router.post("/bids", status_code=202)
def submit_bid(body: BidIn, client: ClientDep, db: DbDep, now: NowDep) -> BidOut:
    """Place a bid (the legacy client wants exactly 202 and reads `id`)."""
    if body.price <= 0:
        raise UnprocessableError("price must be greater than 0")
    with db.write() as session:
        bid = offers.submit_bid(
            session,
            client_id=client.subject,
            provider=body.provider,
            capacity=body.capacity,
            price=body.price,
            notes=body.notes,
            now=now,
        )
        return _bid_out(bid)


@router.get("/bids")
def list_bids(
    principal: PrincipalDep,
    db: DbDep,
    status: BidStatus | None = None,
    provider: Annotated[Text | None, Query(max_length=128)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[BidOut]:
    """Your bids (a miner: the bids addressed to it; admin: all), newest first."""
    with db.read() as session:
        bids = offers.list_bids(
            session,
            principal=principal,
            status=status,
            provider=provider,
            limit=limit,
            offset=offset,
        )
        return [_bid_out(bid) for bid in bids]


@router.get(
    "/bids/{bid_id}",
    responses={404: {"description": "bid not found"}, 403: {"description": "not yours"}},
)
def get_bid(bid_id: str, principal: PrincipalDep, db: DbDep) -> BidOut:
    if not is_id_shaped(bid_id):
        raise NotFoundError("bid not found")
    with db.read() as session:
        return _bid_out(offers.get_bid(session, bid_id=bid_id, principal=principal))
