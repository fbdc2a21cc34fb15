"""The coordinator's error tree; routes raise these, one handler renders `{"detail": ...}`.

DomainError (400)
├── BadRequestError      400  e.g. unbond before the lock ends
├── UnauthorizedError    401  missing or unknown key
├── PaymentRequiredError 402  balance too low
├── ForbiddenError       403  wrong role, not the owner
├── NotFoundError        404
├── ConflictError        409  not available, stale generation, already reviewed
└── UnprocessableError   422  a rule on a well-formed value (stake below the minimum)
"""

from __future__ import annotations


class DomainError(Exception):
    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BadRequestError(DomainError):
    status_code = 400


class UnauthorizedError(DomainError):
    status_code = 401


class PaymentRequiredError(DomainError):
    status_code = 402


class ForbiddenError(DomainError):
    status_code = 403


class NotFoundError(DomainError):
    status_code = 404


class ConflictError(DomainError):
    status_code = 409


class UnprocessableError(DomainError):
    status_code = 422
