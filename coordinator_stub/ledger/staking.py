"""Stakes, pools and rewards (docs/api.md), on the ledger's `balance` and `staked` buckets.

A stake's life: `active` (principal moved balance → staked) → `unbond` once the lock has ended →
`unbonding` (still counted in the pool, earns nothing) → `complete` once `unbonding_period_s`
has passed → `completed` (principal + rewards moved staked → balance).

Upstream kept `staker_count` as a ±1 counter and got it wrong (never incremented under autoflush,
negative after completions, lost updates when requests raced). Here nothing about a pool is
stored: `total_staked`, `staker_count` and `total_rewards` are aggregates over the stakes, read
when asked, so they cannot drift. Every state change is a compare-and-set on `status` whose row
count is checked (`UPDATE ... WHERE status = 'active'`), inside the caller's one transaction, so
two racing `complete` calls pay out once and an `add` cannot land on a stake being unbonded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import ColumnElement, Select, case, func, select, type_coerce, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from coordinator_stub.auth import Principal
from coordinator_stub.config import CoordinatorSettings
from coordinator_stub.core.clock import new_id, rfc3339
from coordinator_stub.core.money import ZERO, from_units, quantize, render, to_units
from coordinator_stub.db.models import Miner, Money, Stake, StakeReward
from coordinator_stub.errors import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    UnprocessableError,
)
from coordinator_stub.ledger import transfers
from coordinator_stub.ledger.transfers import Leg

ACTIVE = "active"
UNBONDING = "unbonding"
COMPLETED = "completed"
STAKE_STATUSES = (ACTIVE, UNBONDING, COMPLETED)
HELD = (ACTIVE, UNBONDING)  # counted in a pool's total_staked and staker_count
MAX_LOCK_DAYS = 365


def create_stake(
    session: Session,
    *,
    staker: str,
    miner_id: str,
    amount: Decimal,
    lock_period_days: int,
    now: datetime,
    settings: CoordinatorSettings,
) -> Stake:
    """Move `amount` from the staker's balance into a new active stake on the miner's pool."""
    amount = quantize(amount)
    if amount < settings.min_stake:
        raise UnprocessableError(
            f"stake amount {render(amount)} AITBC is below the minimum stake of "
            f"{render(settings.min_stake)} AITBC"
        )
    if not 0 <= lock_period_days <= MAX_LOCK_DAYS:
        raise UnprocessableError(f"lock_period_days must be between 0 and {MAX_LOCK_DAYS}")
    if session.get(Miner, miner_id) is None:
        raise NotFoundError(f"miner {miner_id} not found")
    stake = Stake(
        id=new_id("st_"),
        staker=staker,
        miner_id=miner_id,
        amount=amount,
        rewards=ZERO,
        lock_period_days=lock_period_days,
        status=ACTIVE,
        created_at=now,
        lock_ends_at=now + timedelta(days=lock_period_days),
    )
    transfers.transfer(
        session,
        [Leg(staker, "balance", -amount), Leg(staker, "staked", amount)],
        kind="stake",
        ref=stake.id,
        now=now,
    )
    session.add(stake)
    session.flush()
    return stake


def get_stake(session: Session, *, stake_id: str, principal: Principal) -> Stake:
    """The stake, if the caller may see it: 404 when unknown, 403 when someone else's."""
    stake = session.execute(
        select(Stake).where(Stake.id == stake_id).execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if stake is None:
        raise NotFoundError(f"stake {stake_id} not found")
    if stake.staker != principal.subject and not principal.is_admin:
        raise ForbiddenError("this stake belongs to another staker")
    return stake


def list_stakes(
    session: Session,
    *,
    principal: Principal,
    miner_id: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> Sequence[Stake]:
    """The caller's stakes (admin: everyone's), newest first."""
    query = select(Stake)
    if not principal.is_admin:
        query = query.where(Stake.staker == principal.subject)
    if miner_id is not None:
        query = query.where(Stake.miner_id == miner_id)
    if status is not None:
        query = query.where(Stake.status == status)
    return session.scalars(
        query.order_by(Stake.created_at.desc(), Stake.id.desc()).limit(limit).offset(offset)
    ).all()


def add_to_stake(
    session: Session, *, stake_id: str, principal: Principal, amount: Decimal, now: datetime
) -> Stake:
    """Add principal to an active stake of the caller's, from the caller's balance."""
    amount = quantize(amount)
    if amount <= 0:
        raise UnprocessableError("additional_amount must be greater than 0")
    stake = get_stake(session, stake_id=stake_id, principal=principal)
    if stake.staker != principal.subject:
        raise ForbiddenError("only the staker may add to a stake (it debits their balance)")
    _require_status(stake, ACTIVE, "add to")
    _compare_and_set(
        session, stake_id, Stake.status == ACTIVE, {"amount": Stake.amount + amount}, "add to"
    )
    transfers.transfer(
        session,
        [Leg(stake.staker, "balance", -amount), Leg(stake.staker, "staked", amount)],
        kind="stake_add",
        ref=stake_id,
        now=now,
    )
    return get_stake(session, stake_id=stake_id, principal=principal)


def unbond_stake(session: Session, *, stake_id: str, principal: Principal, now: datetime) -> Stake:
    """Start unbonding once the lock has ended (400 before `lock_ends_at`)."""
    stake = get_stake(session, stake_id=stake_id, principal=principal)
    _require_status(stake, ACTIVE, "unbond")
    if now < stake.lock_ends_at:
        raise BadRequestError(f"stake is locked until {rfc3339(stake.lock_ends_at)}")
    _compare_and_set(
        session,
        stake_id,
        (Stake.status == ACTIVE) & (Stake.lock_ends_at <= now),
        {"status": UNBONDING, "unbonding_at": now},
        "unbond",
    )
    return get_stake(session, stake_id=stake_id, principal=principal)


def complete_stake(
    session: Session,
    *,
    stake_id: str,
    principal: Principal,
    now: datetime,
    settings: CoordinatorSettings,
) -> Stake:
    """After the unbonding period, pay principal + rewards back to the staker's balance."""
    stake = get_stake(session, stake_id=stake_id, principal=principal)
    _require_status(stake, UNBONDING, "complete")
    period = timedelta(seconds=settings.unbonding_period_s)
    assert stake.unbonding_at is not None  # set together with status = unbonding
    if now < stake.unbonding_at + period:
        raise BadRequestError(f"stake is unbonding until {rfc3339(stake.unbonding_at + period)}")
    _compare_and_set(
        session,
        stake_id,
        (Stake.status == UNBONDING) & (Stake.unbonding_at <= now - period),
        {"status": COMPLETED, "completed_at": now},
        "complete",
    )
    # The CAS above holds the row (PostgreSQL row lock, SQLite write lock): these values are final.
    done = get_stake(session, stake_id=stake_id, principal=principal)
    payout = done.amount + done.rewards
    transfers.transfer(
        session,
        [Leg(done.staker, "staked", -payout), Leg(done.staker, "balance", payout)],
        kind="stake_complete",
        ref=stake_id,
        now=now,
    )
    return done


def reward_history(session: Session, *, stake_id: str, limit: int) -> Sequence[StakeReward]:
    return session.scalars(
        select(StakeReward)
        .where(StakeReward.stake_id == stake_id)
        .order_by(StakeReward.created_at.desc(), StakeReward.id.desc())
        .limit(limit)
    ).all()


def _require_status(stake: Stake, wanted: str, action: str) -> None:
    if stake.status != wanted:
        raise BadRequestError(f"cannot {action} a stake that is {stake.status}")


def _compare_and_set(
    session: Session,
    stake_id: str,
    condition: ColumnElement[bool],
    values: dict[str, object],
    action: str,
) -> None:
    result = session.execute(
        update(Stake)
        .where(Stake.id == stake_id, condition)
        .values(values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        # Someone changed the stake between our read and this update.
        raise ConflictError(f"cannot {action} stake {stake_id}: it changed concurrently")


# --- pools and stats: aggregates over the stakes, never stored counters -----------------------


@dataclass(frozen=True)
class Pool:
    miner_id: str
    total_staked: Decimal
    staker_count: int
    total_rewards: Decimal
    active_stakes: int
    unbonding_stakes: int


def _money_sum(
    column: ColumnElement[Decimal] | InstrumentedAttribute[Decimal],
) -> ColumnElement[Decimal]:
    return type_coerce(func.coalesce(func.sum(column), 0), Money())


def _aggregates() -> Select[Decimal, int, Decimal, int, int, int, int]:
    held = Stake.status.in_(HELD)
    return select(
        _money_sum(case((held, Stake.amount), else_=None)),
        func.count(func.distinct(case((held, Stake.staker), else_=None))),
        _money_sum(Stake.rewards),
        func.count(case((Stake.status == ACTIVE, 1), else_=None)),
        func.count(case((Stake.status == UNBONDING, 1), else_=None)),
        func.count(case((Stake.status == COMPLETED, 1), else_=None)),
        func.count(func.distinct(case((held, Stake.miner_id), else_=None))),
    )


def pool(session: Session, *, miner_id: str) -> Pool:
    """A miner's pool, computed from its stakes (404 for an unknown miner)."""
    if session.get(Miner, miner_id) is None:
        raise NotFoundError(f"miner {miner_id} not found")
    staked, stakers, rewards, active, unbonding, _completed, _pools = session.execute(
        _aggregates().where(Stake.miner_id == miner_id)
    ).one()
    return Pool(
        miner_id=miner_id,
        total_staked=staked,
        staker_count=int(stakers),
        total_rewards=rewards,
        active_stakes=int(active),
        unbonding_stakes=int(unbonding),
    )


@dataclass(frozen=True)
class StakingStats:
    total_staked: Decimal
    total_stakers: int
    total_rewards: Decimal
    active_stakes: int
    unbonding_stakes: int
    completed_stakes: int
    pools: int


def stats(session: Session) -> StakingStats:
    staked, stakers, rewards, active, unbonding, completed, pools = session.execute(
        _aggregates()
    ).one()
    return StakingStats(
        total_staked=staked,
        total_stakers=int(stakers),
        total_rewards=rewards,
        active_stakes=int(active),
        unbonding_stakes=int(unbonding),
        completed_stakes=int(completed),
        pools=int(pools),
    )


# --- rewards ------------------------------------------------------------------------------------


def split_pro_rata(total_units: int, weights: Sequence[tuple[str, int]]) -> dict[str, int]:
    """Split `total_units` over keys pro rata to their weights, largest remainder first.

    The parts sum to `total_units` exactly; each is within one unit of its exact share. Ties in
    the remainder go to the earlier key, so the answer is deterministic.
    """
    weight_sum = sum(weight for _, weight in weights)
    if total_units <= 0 or weight_sum <= 0:
        return {key: 0 for key, _ in weights}
    parts = {key: total_units * weight // weight_sum for key, weight in weights}
    leftover = total_units - sum(parts.values())
    by_remainder = sorted(
        range(len(weights)),
        key=lambda i: (-(total_units * weights[i][1] % weight_sum), i),
    )
    for i in by_remainder[:leftover]:
        parts[weights[i][0]] += 1
    return parts


def distribute_rewards(
    session: Session, *, miner_id: str, amount: Decimal, tx_ref: str, now: datetime
) -> Decimal:
    """Move `amount` from the miner's balance into its active stakes, pro rata to principal.

    Called by settlement, after it has paid the miner, with the stakers' share of the miner's
    revenue. Each active stake's `rewards` grows by its part and its staker's `staked` bucket
    by the same; the parts sum to `amount` exactly (largest remainder, to 1e-8). Returns what
    was distributed: 0 when the miner has no active stake (the share stays with the miner).
    """
    amount = quantize(amount)
    if amount <= 0:
        return ZERO
    # Lock the pool's active stakes (PostgreSQL; SQLite's write lock covers it), in id order so
    # two settlements never deadlock: an unbond racing with us waits, and we pay only stakes
    # that are still active.
    stakes = session.execute(
        select(Stake.id, Stake.staker, Stake.amount)
        .where(Stake.miner_id == miner_id, Stake.status == ACTIVE)
        .order_by(Stake.id)
        .with_for_update()
    ).all()
    if not stakes:
        return ZERO
    parts = split_pro_rata(to_units(amount), [(row.id, to_units(row.amount)) for row in stakes])
    per_staker: dict[str, Decimal] = {}
    for row in stakes:
        per_staker[row.staker] = per_staker.get(row.staker, ZERO) + from_units(parts[row.id])
    tx_id = transfers.transfer(
        session,
        [Leg(miner_id, "balance", -amount)]
        + [Leg(staker, "staked", part) for staker, part in sorted(per_staker.items())],
        kind="stake_reward",
        ref=tx_ref,
        now=now,
    )
    for row in stakes:
        part = from_units(parts[row.id])
        if part == 0:
            continue
        result = session.execute(
            update(Stake)
            .where(Stake.id == row.id, Stake.status == ACTIVE)
            .values(rewards=Stake.rewards + part)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise RuntimeError(f"stake {row.id} left the active set while locked")
        session.add(
            StakeReward(
                stake_id=row.id,
                miner_id=miner_id,
                amount=part,
                ref=tx_ref,
                tx_id=tx_id,
                created_at=now,
            )
        )
    return amount
