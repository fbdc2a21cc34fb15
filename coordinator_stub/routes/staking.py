"""Staking (docs/api.md): stakes on a miner's pool, unbond, complete, rewards, pools, stats."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from coordinator_stub.config import CoordinatorSettings
from coordinator_stub.core.clock import rfc3339
from coordinator_stub.core.money import MoneyIn, MoneyOut
from coordinator_stub.db.models import Stake
from coordinator_stub.deps import DbDep, NowDep, PrincipalDep, SettingsDep
from coordinator_stub.errors import NotFoundError
from coordinator_stub.ledger import staking
from coordinator_stub.routes.inputs import Limit, Name, Offset, Text, is_id_shaped

router = APIRouter(tags=["staking"])

StakeStatus = Literal["active", "unbonding", "completed"]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "stake not found"}}
_NOT_YOURS: dict[int | str, dict[str, Any]] = {
    403: {"description": "the stake belongs to another staker"}
}


class StakeIn(BaseModel):
    miner_id: Name
    amount: MoneyIn = Field(description="AITBC, at least min_stake (100 by default)")
    lock_period_days: int = Field(default=0, ge=0, le=staking.MAX_LOCK_DAYS)


class StakeAddIn(BaseModel):
    additional_amount: MoneyIn = Field(description="AITBC, > 0")


class StakeOut(BaseModel):
    id: str
    staker: str
    miner_id: str
    amount: MoneyOut
    rewards: MoneyOut
    lock_period_days: int
    status: StakeStatus
    created_at: str
    lock_ends_at: str
    unbonding_at: str | None
    unbonding_ends_at: str | None = Field(description="when `complete` becomes possible")
    completed_at: str | None


class RewardOut(BaseModel):
    amount: MoneyOut
    ref: str | None
    tx_id: str
    created_at: str


class StakeRewardsOut(BaseModel):
    stake_id: str
    miner_id: str
    status: StakeStatus
    amount: MoneyOut
    rewards: MoneyOut
    distributions: list[RewardOut]


class PoolOut(BaseModel):
    miner_id: str
    total_staked: MoneyOut
    staker_count: int
    total_rewards: MoneyOut
    active_stakes: int
    unbonding_stakes: int


class StakingStatsOut(BaseModel):
    total_staked: MoneyOut
    total_stakers: int
    total_rewards: MoneyOut
    active_stakes: int
    unbonding_stakes: int
    completed_stakes: int
    pools: int
    min_stake: MoneyOut
    unbonding_period_s: float
    stakers_share: str


def _check_stake_id(stake_id: str) -> None:
    """Anything that cannot be one of our ids is simply not found, without asking the database."""
    if not is_id_shaped(stake_id):
        raise NotFoundError(f"stake {stake_id} not found")


def stake_out(stake: Stake, settings: CoordinatorSettings) -> StakeOut:
    unbonding_ends_at = (
        stake.unbonding_at + timedelta(seconds=settings.unbonding_period_s)
        if stake.unbonding_at is not None
        else None
    )
    return StakeOut(
        id=stake.id,
        staker=stake.staker,
        miner_id=stake.miner_id,
        amount=stake.amount,
        rewards=stake.rewards,
        lock_period_days=stake.lock_period_days,
        status=stake.status,
        created_at=rfc3339(stake.created_at) or "",
        lock_ends_at=rfc3339(stake.lock_ends_at) or "",
        unbonding_at=rfc3339(stake.unbonding_at),
        unbonding_ends_at=rfc3339(unbonding_ends_at),
        completed_at=rfc3339(stake.completed_at),
    )


@router.post(
    "/v1/stake",
    status_code=201,
    responses={402: {"description": "balance too low"}, 404: {"description": "unknown miner"}},
)
def create_stake(
    body: StakeIn, principal: PrincipalDep, db: DbDep, now: NowDep, settings: SettingsDep
) -> StakeOut:
    """Stake AITBC from your balance on a miner's pool (minimum `min_stake`)."""
    with db.write() as session:
        stake = staking.create_stake(
            session,
            staker=principal.subject,
            miner_id=body.miner_id,
            amount=body.amount,
            lock_period_days=body.lock_period_days,
            now=now,
            settings=settings,
        )
        return stake_out(stake, settings)


@router.get("/v1/stakes")
def list_stakes(
    principal: PrincipalDep,
    db: DbDep,
    settings: SettingsDep,
    miner_id: Annotated[Text | None, Query(max_length=128)] = None,
    status: StakeStatus | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[StakeOut]:
    """Your stakes (admin: all), newest first."""
    with db.read() as session:
        stakes = staking.list_stakes(
            session,
            principal=principal,
            miner_id=miner_id,
            status=status,
            limit=limit,
            offset=offset,
        )
        return [stake_out(stake, settings) for stake in stakes]


@router.get("/v1/stake/{stake_id}", responses={**_NOT_FOUND, **_NOT_YOURS})
def get_stake(stake_id: str, principal: PrincipalDep, db: DbDep, settings: SettingsDep) -> StakeOut:
    _check_stake_id(stake_id)
    with db.read() as session:
        return stake_out(
            staking.get_stake(session, stake_id=stake_id, principal=principal), settings
        )


@router.post(
    "/v1/stake/{stake_id}/add",
    responses={**_NOT_FOUND, **_NOT_YOURS, 400: {"description": "not active"}},
)
def add_to_stake(
    stake_id: str,
    body: StakeAddIn,
    principal: PrincipalDep,
    db: DbDep,
    now: NowDep,
    settings: SettingsDep,
) -> StakeOut:
    _check_stake_id(stake_id)
    with db.write() as session:
        stake = staking.add_to_stake(
            session, stake_id=stake_id, principal=principal, amount=body.additional_amount, now=now
        )
        return stake_out(stake, settings)


@router.post(
    "/v1/stake/{stake_id}/unbond",
    responses={**_NOT_FOUND, **_NOT_YOURS, 400: {"description": "locked or not active"}},
)
def unbond_stake(
    stake_id: str, principal: PrincipalDep, db: DbDep, now: NowDep, settings: SettingsDep
) -> StakeOut:
    _check_stake_id(stake_id)
    with db.write() as session:
        stake = staking.unbond_stake(session, stake_id=stake_id, principal=principal, now=now)
        return stake_out(stake, settings)


@router.post(
    "/v1/stake/{stake_id}/complete",
    responses={**_NOT_FOUND, **_NOT_YOURS, 400: {"description": "still unbonding"}},
)
def complete_stake(
    stake_id: str, principal: PrincipalDep, db: DbDep, now: NowDep, settings: SettingsDep
) -> StakeOut:
    _check_stake_id(stake_id)
    with db.write() as session:
        stake = staking.complete_stake(
            session, stake_id=stake_id, principal=principal, now=now, settings=settings
        )
        return stake_out(stake, settings)


@router.get("/v1/stake/{stake_id}/rewards", responses={**_NOT_FOUND, **_NOT_YOURS})
def get_stake_rewards(
    stake_id: str,
    principal: PrincipalDep,
    db: DbDep,
    limit: Limit = 100,
) -> StakeRewardsOut:
    """The stake's rewards and the distributions that made them, newest first."""
    _check_stake_id(stake_id)
    with db.read() as session:
        stake = staking.get_stake(session, stake_id=stake_id, principal=principal)
        history = staking.reward_history(session, stake_id=stake_id, limit=limit)
        return StakeRewardsOut(
            stake_id=stake.id,
            miner_id=stake.miner_id,
            status=stake.status,
            amount=stake.amount,
            rewards=stake.rewards,
            distributions=[
                RewardOut(
                    amount=row.amount,
                    ref=row.ref,
                    tx_id=row.tx_id,
                    created_at=rfc3339(row.created_at) or "",
                )
                for row in history
            ],
        )


@router.get("/v1/staking/pools/{miner_id}", responses={404: {"description": "unknown miner"}})
def get_pool(miner_id: str, db: DbDep) -> PoolOut:
    """A miner's pool, computed from its stakes when read."""
    if "\x00" in miner_id:
        raise NotFoundError(f"miner {miner_id} not found")
    with db.read() as session:
        pool = staking.pool(session, miner_id=miner_id)
    return PoolOut(
        miner_id=pool.miner_id,
        total_staked=pool.total_staked,
        staker_count=pool.staker_count,
        total_rewards=pool.total_rewards,
        active_stakes=pool.active_stakes,
        unbonding_stakes=pool.unbonding_stakes,
    )


@router.get("/v1/staking/stats")
def get_staking_stats(db: DbDep, settings: SettingsDep) -> StakingStatsOut:
    with db.read() as session:
        stats = staking.stats(session)
    return StakingStatsOut(
        total_staked=stats.total_staked,
        total_stakers=stats.total_stakers,
        total_rewards=stats.total_rewards,
        active_stakes=stats.active_stakes,
        unbonding_stakes=stats.unbonding_stakes,
        completed_stakes=stats.completed_stakes,
        pools=stats.pools,
        min_stake=settings.min_stake,
        unbonding_period_s=settings.unbonding_period_s,
        stakers_share=str(settings.stakers_share),
    )
