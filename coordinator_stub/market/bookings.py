"""The booking state machine and its settlement; no double booking (docs/api.md).

    active ──release by its client──────────────▶ released               (refund_ratio * unused)
       │  ──release by miner/admin, forced delete▶ cancelled_by_provider  (100 % of unused)
       │  ──rejected ack, provider fault─────────▶ failed                 (100 % of unused)
       └──end_time reached (sweeper, next write)─▶ completed              (no refund)

Every end goes through `end_booking()`: a compare-and-set on `status = 'active'` whose row count
is checked, so a booking is settled once however many processes, sweepers and requests race to
end it, and money moves only for the one that won.

No double booking: the unique partial index `uq_booking_active_gpu` admits one active booking per
GPU, across processes. `book_gpu()` inserts inside a SAVEPOINT and turns a violation into a 409.
A booking past its `end_time` reads as over at once (status.py); before a write needs the GPU it
settles such a booking itself, so the index never blocks a GPU whose booking has run out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal, NamedTuple, get_args

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from coordinator_stub.auth import Principal
from coordinator_stub.config import CoordinatorSettings
from coordinator_stub.core import events
from coordinator_stub.core.clock import new_id
from coordinator_stub.core.money import MAX_SUPPLY, ZERO, quantize, render
from coordinator_stub.db.engine import Database
from coordinator_stub.db.models import ACTIVE, Booking, Gpu
from coordinator_stub.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    PaymentRequiredError,
    UnprocessableError,
)
from coordinator_stub.ledger import staking, transfers
from coordinator_stub.ledger.transfers import Leg
from coordinator_stub.market import lease_signal
from coordinator_stub.market.gpu_view import gpu_rows
from coordinator_stub.market.pricing.quotes import Quote, quote_gpu

Outcome = Literal["completed", "released", "cancelled_by_provider", "failed"]
OUTCOMES: tuple[str, ...] = get_args(Outcome)
SWEEP_BATCH = 500
_MICROSECOND = timedelta(microseconds=1)


class GpuState(NamedTuple):
    gpu: Gpu
    booking: Booking | None  # its active booking, if any
    status: str  # available | booked | offline, derived (status.py)
    last_heartbeat_at: datetime | None


@dataclass(frozen=True)
class BookResult:
    booking: Booking
    quote: Quote


def effective_status(booking: Booking, now: datetime) -> str:
    """The status a reader sees: an active booking past its end_time is already `completed`."""
    if booking.status == ACTIVE and booking.end_time <= now:
        return "completed"
    return booking.status


def refund_for(booking: Booking, *, outcome: str, now: datetime, ratio: Decimal) -> Decimal:
    """docs/api.md: used time is never paid back; unused time is refunded at `ratio` (a renter's
    release) or in full (the provider's fault); a completed booking refunds nothing."""
    if outcome == "completed":
        return ZERO
    duration_us = (booking.end_time - booking.start_time) // _MICROSECOND
    if duration_us <= 0:
        return ZERO
    ended_at = min(now, booking.end_time)
    unused_us = max(booking.end_time - ended_at, timedelta(0)) // _MICROSECOND
    share = ratio if outcome == "released" else Decimal(1)
    return quantize(share * booking.total_cost * Decimal(unused_us) / Decimal(duration_us))


def end_booking(
    session: Session,
    booking_id: str,
    *,
    outcome: str,
    now: datetime,
    settings: CoordinatorSettings,
) -> Booking | None:
    """End an active booking and settle its escrow, in the caller's transaction.

    Returns the ended booking, or None when it was not active (already ended by someone else:
    then nothing moved). Settlement is one balanced transfer — the client's escrow goes back to
    its balance (the refund) and to the miner's balance (the rest) — after which
    `staking.distribute_rewards` moves the stakers' share of the rest from the miner's balance
    into its stakers' staked buckets (whatever it does not distribute stays with the miner).
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown booking outcome {outcome!r}")
    booking = session.scalars(
        select(Booking).where(Booking.id == booking_id).execution_options(populate_existing=True)
    ).one_or_none()
    if booking is None or booking.status != ACTIVE:
        return None
    refund = refund_for(booking, outcome=outcome, now=now, ratio=settings.refund_ratio)
    ended = session.execute(
        update(Booking)
        .where(Booking.id == booking_id, Booking.status == ACTIVE)
        .values(
            status=outcome,
            ended_at=min(now, booking.end_time),
            refund=refund,
            lease_generation=Booking.lease_generation + 1,
        )
        .execution_options(synchronize_session=False)
    )
    if ended.rowcount != 1:  # type: ignore[attr-defined]
        return None  # a concurrent writer ended it first (READ COMMITTED re-check)
    rest = booking.total_cost - refund
    transfers.transfer(
        session,
        [
            Leg(booking.client_id, "escrowed", -booking.total_cost),
            Leg(booking.client_id, "balance", refund),
            Leg(booking.miner_id, "balance", rest),
        ],
        kind=f"booking_{outcome}",
        ref=booking.id,
        now=now,
    )
    share = quantize(settings.stakers_share * rest)
    distributed = ZERO
    if share > 0:
        distributed = staking.distribute_rewards(
            session, miner_id=booking.miner_id, amount=share, tx_ref=booking.id, now=now
        )
    session.execute(
        update(Booking)
        .where(Booking.id == booking_id)
        .values(miner_revenue=rest - distributed, stakers_reward=distributed)
        .execution_options(synchronize_session=False)
    )
    lease_signal.lease_set_changed(session, booking.miner_id)
    session.refresh(booking)
    events.emit_on_commit(
        session,
        "booking_ended",
        booking_id=booking.id,
        gpu_id=booking.gpu_id,
        miner_id=booking.miner_id,
        client_id=booking.client_id,
        outcome=outcome,
        refund=refund,
        miner_revenue=booking.miner_revenue,
        stakers_reward=booking.stakers_reward,
    )
    return booking


def gpu_for_update(
    session: Session,
    gpu_id: str,
    *,
    now: datetime,
    settings: CoordinatorSettings,
    share_lock: bool = False,
) -> GpuState:
    """The GPU's row for a write, with an active booking that has run out settled first.

    `share_lock` takes a FOR SHARE lock on the GPU row (PostgreSQL; SQLite's BEGIN IMMEDIATE
    already serialises writers), so a concurrent delete cannot slip between book's checks and
    its insert. Raises NotFoundError for an unknown or deleted GPU.
    """
    if share_lock:
        session.execute(
            select(Gpu.id)
            .where(Gpu.id == gpu_id, Gpu.deleted_at.is_(None))
            .with_for_update(read=True)
        )
    query = gpu_rows(now, settings.offline_after_s).where(Gpu.id == gpu_id)
    row = session.execute(query.execution_options(populate_existing=True)).one_or_none()
    if row is None:
        raise NotFoundError(f"GPU {gpu_id} not found")
    state = GpuState(*row)
    if state.booking is not None and state.booking.end_time <= now:
        end_booking(session, state.booking.id, outcome="completed", now=now, settings=settings)
        state = GpuState(*session.execute(query).one())
    return state


def check_duration(duration_hours: float, settings: CoordinatorSettings) -> None:
    """Refuse a booking shorter than `min_booking_s`: one that short buys next to nothing but
    would still count in its market's demand and give a review right (quotes refuse it too)."""
    if duration_hours * 3600 < settings.min_booking_s:
        minimum = settings.min_booking_s
        raise UnprocessableError(
            f"duration_hours is too short: the shortest booking is {minimum:g} s "
            f"({minimum / 3600:.6g} h)"
        )


def check_attestation(gpu: Gpu, *, now: datetime, settings: CoordinatorSettings) -> None:
    """Refuse a GPU its attestation disqualifies (`attestation_required`), and one whose
    memory an open attestation is filling."""
    if gpu.attesting_until is not None and gpu.attesting_until > now:
        raise ConflictError(f"GPU {gpu.id} is being attested: try again in a minute")
    policy = settings.attestation_required
    if policy == "off":
        return
    if gpu.attestation_status == "failed":
        raise ConflictError(f"GPU {gpu.id} failed its attestation: {gpu.attestation_reason}")
    if policy == "verified" and gpu.attestation_status != "passed":
        raise ConflictError(f"GPU {gpu.id} is not verified (never attested)")


def book_gpu(
    session: Session,
    *,
    gpu_id: str,
    client_id: str,
    duration_hours: float,
    job_id: str | None,
    max_total_cost: Decimal | None,
    max_price_per_hour: Decimal | None,
    now: datetime,
    settings: CoordinatorSettings,
) -> BookResult:
    """Book an available GPU at the quote of this moment; the cost goes into escrow."""
    check_duration(duration_hours, settings)
    gpu, _active, status, _seen = gpu_for_update(
        session, gpu_id, now=now, settings=settings, share_lock=True
    )
    if status != "available":
        raise ConflictError(f"GPU {gpu_id} is not available (it is {status})")
    check_attestation(gpu, now=now, settings=settings)
    quote = quote_gpu(session, gpu, now=now, settings=settings)
    total_cost = quote.total_cost(Decimal(str(duration_hours)))
    quoted = (
        f"the quote is {render(quote.price_per_hour)} AITBC/h, "
        f"{render(total_cost)} AITBC for {duration_hours} h"
    )
    if max_price_per_hour is not None and quote.price_per_hour > max_price_per_hour:
        raise ConflictError(f"price above your max_price_per_hour: {quoted}")
    if max_total_cost is not None and total_cost > max_total_cost:
        raise ConflictError(f"cost above your total_cost: {quoted}")
    if total_cost <= 0:
        # A free booking would let anyone review the GPU and inflate its market's demand.
        raise UnprocessableError(f"duration_hours is too short: {quoted}")
    if total_cost > MAX_SUPPLY:
        raise PaymentRequiredError(f"more than all the AITBC there is: {quoted}")
    booking = Booking(
        id=new_id("bk_"),
        gpu_id=gpu.id,
        miner_id=gpu.miner_id,
        client_id=client_id,
        job_id=job_id,
        duration_hours=duration_hours,
        price_per_hour=quote.price_per_hour,
        base_price=quote.base_price,
        total_cost=total_cost,
        pricing={
            "multiplier": str(quote.multiplier),
            "confidence_score": quote.confidence_score,
            "factors": quote.factors,
        },
        status=ACTIVE,
        lease_state="pending",
        lease_generation=1,
        start_time=now,
        end_time=now + timedelta(hours=duration_hours),
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(booking)
            session.flush()
    except IntegrityError as exc:  # uq_booking_active_gpu: another request booked it first
        raise ConflictError(f"GPU {gpu_id} is not available (it is booked)") from exc
    transfers.transfer(
        session,
        [Leg(client_id, "balance", -total_cost), Leg(client_id, "escrowed", total_cost)],
        kind="booking_escrow",
        ref=booking.id,
        now=now,
    )
    lease_signal.lease_set_changed(session, gpu.miner_id)
    events.emit_on_commit(
        session,
        "booking_created",
        booking_id=booking.id,
        gpu_id=gpu.id,
        miner_id=gpu.miner_id,
        client_id=client_id,
        duration_hours=duration_hours,
        price_per_hour=quote.price_per_hour,
        total_cost=total_cost,
    )
    return BookResult(booking=booking, quote=quote)


def release_gpu(
    session: Session,
    *,
    gpu_id: str,
    principal: Principal,
    now: datetime,
    settings: CoordinatorSettings,
) -> Booking | None:
    """End the GPU's active booking; None when it has none (already available).

    Its client releases (`released`, partial refund); its miner or an admin cancels
    (`cancelled_by_provider`, full refund of the unused time); anyone else is refused.
    """
    gpu, active, _status, _seen = gpu_for_update(session, gpu_id, now=now, settings=settings)
    if active is None or active.status != ACTIVE:
        return None
    if principal.is_admin or (principal.role == "miner" and principal.subject == gpu.miner_id):
        outcome = "cancelled_by_provider"
    elif principal.role == "client" and principal.subject == active.client_id:
        outcome = "released"
    else:
        raise ForbiddenError("only the booking's client, the GPU's miner or an admin may release")
    return end_booking(session, active.id, outcome=outcome, now=now, settings=settings)


def confirm_booking(
    session: Session,
    *,
    gpu_id: str,
    principal: Principal,
    now: datetime,
    settings: CoordinatorSettings,
) -> Booking:
    """The active booking's client acknowledges it (recorded once in `confirmed_at`)."""
    _gpu, active, _status, _seen = gpu_for_update(session, gpu_id, now=now, settings=settings)
    if active is None or active.status != ACTIVE:
        raise ConflictError(f"GPU {gpu_id} is not booked")
    if not principal.is_admin and principal.subject != active.client_id:
        raise ForbiddenError("only the client of the active booking may confirm it")
    session.execute(
        update(Booking)
        .where(Booking.id == active.id, Booking.confirmed_at.is_(None))
        .values(confirmed_at=now)
        .execution_options(synchronize_session=False)
    )
    session.refresh(active)
    return active


def sweep(db: Database, settings: CoordinatorSettings, now: datetime) -> int:
    """Settle every active booking whose end_time has passed as `completed`.

    One transaction per booking, so a sweep never holds many account locks at once; safe with
    several processes sweeping (end_booking's compare-and-set settles each booking once).
    Returns how many this call settled.
    """
    settled = 0
    while True:
        with db.read() as session:
            due = session.scalars(
                select(Booking.id)
                .where(Booking.status == ACTIVE, Booking.end_time <= now)
                .order_by(Booking.end_time, Booking.id)
                .limit(SWEEP_BATCH)
            ).all()
        for booking_id in due:
            with db.write() as session:
                if end_booking(
                    session, booking_id, outcome="completed", now=now, settings=settings
                ):
                    settled += 1
        if len(due) < SWEEP_BATCH:
            return settled
