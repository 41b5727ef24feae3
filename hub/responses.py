"""The bodies of the HTTP API's JSON success answers, for the OpenAPI document
(`@operation(returns=...)`, hub.openapi).

They describe what the handlers and the ledger write (the `as_json` methods, the SQL of the
batch functions), and are not used to write it: every model forbids extra fields, so an answer
with a field its model lacks fails validation (tests/response_check.py holds the suite's answers
to them). Times are ISO 8601 text, amounts integers in minor units, user ids the platform's own.
A field that is sometimes left out (not null) is typed `X | SkipJsonSchema[None] = None`, so
the document shows it as optional without offering null.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel
from pydantic.json_schema import SkipJsonSchema


class ResponseModel(BaseModel):
    """A JSON object Hub answers with, and nothing more: an undeclared field is an error."""

    model_config = ConfigDict(extra="forbid")


class Money(ResponseModel):
    """An amount in minor units with its ISO 4217 currency."""

    amount: int
    currency: str


# ---- users and creators ----------------------------------------------------------------------


class Me(ResponseModel):
    """The caller: `role` from the token, `name` as stored (or the token's)."""

    id: str
    role: Literal["fan", "creator", "admin"]
    name: str | None


class Goal(ResponseModel):
    """A creator's tipping goal and the tips it raised since it started (gross)."""

    title: str
    target: int
    currency: str
    raised: int
    started_at: str


class Live(ResponseModel):
    """Since when a creator is live, and the stream's title."""

    since: str
    title: str | None


class Creator(ResponseModel):
    """A creator's public profile."""

    id: str
    name: str | None
    goal: Goal | None
    live: Live | None


class GoalAnswer(ResponseModel):
    """The creator's goal as now set."""

    goal: Goal


class LiveAnswer(ResponseModel):
    """The creator's live state as now set (null: not live)."""

    live: Live | None


# ---- tips, wallet, statement -----------------------------------------------------------------


class TransferEntry(ResponseModel):
    """One leg of a transfer: the account it moved, its owner (null: a system account) and the
    signed amount."""

    account_id: int
    owner_id: str | None
    kind: str
    amount: int


class Tip(ResponseModel):
    """A tip from the wallet: its transfer, the platform fee and what the creator nets."""

    id: int
    kind: Literal["tip"]
    fan_id: str
    creator_id: str
    amount: Money
    fee: Money
    net: Money
    message: str | None
    created_at: str
    entries: list[TransferEntry]


class TipListed(ResponseModel):
    """A tip as the caller's list shows it, with both parties' names (payment_id: a card
    tip's payment)."""

    id: int
    fan_id: str
    fan_name: str | None
    creator_id: str
    creator_name: str | None
    amount: Money
    fee: Money
    net: Money
    message: str | None
    payment_id: int | None
    created_at: str


class TipPage(ResponseModel):
    """A page of tips, newest first; pass next_cursor as `before` for the next."""

    data: list[TipListed]
    next_cursor: int | None
    has_more: bool


class Balance(ResponseModel):
    """An account's balance now: posted, held by pending payouts, available."""

    id: int
    kind: str
    currency: str
    balance: int
    held: int
    available: int
    version: int


class PostedBalance(ResponseModel):
    """An account's posted balance at a past time."""

    id: int
    kind: str
    currency: str
    balance: int


class Wallet(ResponseModel):
    """The caller's balances now."""

    user_id: str
    balances: list[Balance]


class WalletAsOf(ResponseModel):
    """The caller's posted balances at `as_of`."""

    user_id: str
    balances: list[PostedBalance]
    as_of: str


class WalletAnswer(RootModel[Wallet | WalletAsOf]):
    """The caller's balances: now, or with ?as_of= the posted balances then."""


class StatementEntry(ResponseModel):
    """One entry of the caller's statement; `details` is the transfer's metadata without nulls."""

    id: int
    transfer_id: int
    kind: str
    account: str
    amount: Money
    balance_after: int
    reverses: int | None
    fee_bps: int | None
    details: dict[str, Any]
    created_at: str


class StatementPage(ResponseModel):
    """A page of the caller's entries, newest first; pass next_cursor as `before` for the
    next."""

    data: list[StatementEntry]
    next_cursor: int | None
    has_more: bool


# ---- payments, payouts, refunds --------------------------------------------------------------


class Payment(ResponseModel):
    """A provider payment: a top-up, or the card side of a tip or purchase (`details`)."""

    id: int
    reference: str
    provider: str
    amount: Money
    purpose: Literal["topup", "tip", "purchase"]
    details: dict[str, Any]
    status: str
    checkout_url: str | None
    refunded: Money
    failure_reason: str | None
    created_at: str
    updated_at: str


class CardCheckout(ResponseModel):
    """A pending card payment for a tip or purchase, and where the payer completes it."""

    payment: Payment
    checkout_url: str


class Payout(ResponseModel):
    """A payout of a creator's earnings through a provider."""

    id: int
    reference: str
    amount: Money
    provider: str
    status: str
    failure_reason: str | None
    created_at: str
    updated_at: str


class Refund(ResponseModel):
    """A refund of a payment, with the payment as it now stands."""

    id: int
    reference: str
    payment_id: int
    amount: Money
    status: str
    created_at: str
    payment: Payment


# ---- pay-per-view ------------------------------------------------------------------------------


class Content(ResponseModel):
    """A content item as its creator registered it, body included."""

    id: int
    creator_id: str
    title: str
    price: Money
    created_at: str
    body: str | None


class ContentView(ResponseModel):
    """A content item as the caller sees it: `body` only when has_access is true."""

    id: int
    creator_id: str
    title: str
    price: Money
    created_at: str
    has_access: bool
    body: str | None = None


class ContentPage(ResponseModel):
    """A page of a creator's content, newest first; pass next_cursor as `before` for the
    next."""

    data: list[ContentView]
    next_cursor: int | None
    has_more: bool


class Purchase(ResponseModel):
    """A purchase from the wallet: its transfer, the platform fee and what the creator nets."""

    id: int
    kind: Literal["purchase"]
    content_id: int
    buyer_id: str
    creator_id: str
    amount: Money
    fee: Money
    net: Money
    created_at: str


# ---- admin -------------------------------------------------------------------------------------


class PlatformFee(ResponseModel):
    """The platform fee, in basis points."""

    bps: int


class FailedJob(ResponseModel):
    """A job that failed for good, and its retry if it had one."""

    id: int
    job: str
    job_id: str | None
    args: list[Any]
    error: str
    tries: int
    failed_at: str
    retried_at: str | None
    retried_by: str | None
    retry_job_id: str | None


class FailedJobs(ResponseModel):
    """Jobs that failed for good, newest first."""

    data: list[FailedJob]


class RevenueRow(ResponseModel):
    """Gross volume, platform fees and counts of one period and currency."""

    period_start: str
    currency: str
    gross: int
    platform_fees: int
    tips: int
    sales: int


class RevenueReport(ResponseModel):
    """Revenue per period over a range of days."""

    period: str
    from_: str = Field(alias="from")
    to: str
    data: list[RevenueRow]


class CreatorEarnings(ResponseModel):
    """What a creator earned (net) over the range."""

    creator_id: str
    earnings: int


class TopCreatorsReport(ResponseModel):
    """Top creators by earnings over a range of days, in one currency."""

    currency: str
    from_: str = Field(alias="from")
    to: str
    data: list[CreatorEarnings]


class ProviderPayments(ResponseModel):
    """A provider account's payments started in the range and how they ended (success_rate:
    null when none ended); app_id: whose account, "default" for the deployment's."""

    provider: str
    app_id: str
    started: int
    succeeded: int
    failed: int
    pending: int
    success_rate: float | None


class PaymentsReport(ResponseModel):
    """Payment success per provider over a range of days."""

    from_: str = Field(alias="from")
    to: str
    data: list[ProviderPayments]


# ---- presence and overlay keys -----------------------------------------------------------------


class OverlayKey(ResponseModel):
    """An overlay key's record (never the key itself)."""

    id: int
    label: str | None
    created_at: str
    revoked_at: str | None


class OverlayKeyWithKey(OverlayKey):
    """A new overlay key's record and the key, shown this once."""

    key: str


class OverlayKeys(ResponseModel):
    """The creator's overlay keys."""

    data: list[OverlayKey]


class UserConnections(ResponseModel):
    """A user's open sockets across the cluster."""

    id: str
    connections: int


class ClusterPresence(ResponseModel):
    """Users connected now (a token's answer), and the one user asked for with ?user_id=."""

    connected_users: int
    user: UserConnections | SkipJsonSchema[None] = None


class AppPresence(ResponseModel):
    """The connections of each of the app's users asked for (an API key's answer)."""

    users: list[UserConnections]


class Presence(RootModel[ClusterPresence | AppPresence]):
    """Presence as a token (admins) or an API key (read) sees it."""


class CreatorPresence(ResponseModel):
    """A creator's live overlays and viewers."""

    creator_id: str
    overlays: int
    viewers: int


# ---- the server API ----------------------------------------------------------------------------


class PublishedEvent(ResponseModel):
    """An event written to a user's log."""

    id: int
    user_id: str
    seq: int


class Published(ResponseModel):
    """A published notification: its stored type, the channel (null: users' logs) and the
    events written."""

    type: str
    channel: str | None
    events: list[PublishedEvent]


class Event(ResponseModel):
    """An event of a user's log, as the sockets send it."""

    id: int
    seq: int
    type: str
    occurred_at: str
    data: dict[str, Any]


class EventPage(ResponseModel):
    """A page of a user's log in order; next_after is the cursor of the next page."""

    user_id: str
    data: list[Event]
    has_more: bool
    next_after: int


class User(ResponseModel):
    """One of the app's users (banned_until: null when not banned)."""

    id: str
    role: Literal["fan", "creator", "admin"]
    name: str | None
    email: str | None
    created_at: str
    banned_until: str | None


class Disconnected(ResponseModel):
    """The user whose sockets are being closed, and how many were open."""

    user_id: str
    connections: int


class Banned(ResponseModel):
    """A ban: until when, and how many of the user's sockets were open."""

    user_id: str
    banned_until: str
    connections: int


class Unbanned(ResponseModel):
    """A lifted ban."""

    user_id: str
    banned_until: None


class OwnSettings(ResponseModel):
    """What an app set for itself (null: the deployment's)."""

    fee_bps: int | None
    currencies: list[str] | None
    rate_limit_server: str | None
    allowed_origins: list[str]


class EffectiveSettings(ResponseModel):
    """What applies to an app."""

    fee_bps: int
    currencies: list[str]
    rate_limit_server: str
    allowed_origins: list[str]


class App(ResponseModel):
    """The caller's app and its settings."""

    id: str
    name: str
    created_at: str
    own: OwnSettings
    effective: EffectiveSettings


class ApiKey(ResponseModel):
    """An API key of the app (never its secret)."""

    id: int
    app_id: str
    prefix: str
    scopes: list[str]
    label: str | None
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None
    rotated_to: int | None


class ApiKeyWithSecret(ApiKey):
    """A new API key and its secret, shown this once."""

    secret: str


class ApiKeys(ResponseModel):
    """The app's API keys."""

    data: list[ApiKey]


# ---- outbound webhooks -------------------------------------------------------------------------


class WebhookEndpoint(ResponseModel):
    """A webhook endpoint of the app (never its secret)."""

    id: int
    app_id: str
    url: str
    description: str | None
    event_types: list[str]
    enabled: bool
    created_at: str
    disabled_at: str | None
    disabled_reason: str | None
    failing_since: str | None
    previous_secret_until: str | None


class WebhookEndpointWithSecret(WebhookEndpoint):
    """A webhook endpoint and its signing secret, shown on creation and rotation only."""

    secret: str


class WebhookEndpoints(ResponseModel):
    """The app's webhook endpoints."""

    data: list[WebhookEndpoint]


class DeliveryAttempt(ResponseModel):
    """One attempt of a delivery (status_code null: no answer; response: its first 1 KiB)."""

    at: str
    status_code: int | None
    response: str | None
    duration_ms: int
    error: str | None


class Delivery(ResponseModel):
    """A delivery of an event to an endpoint, with its last attempt."""

    id: int
    endpoint_id: int
    event_id: int
    webhook_id: str
    type: str
    user_id: str
    seq: int
    status: str
    attempts: int
    next_attempt_at: str | None
    created_at: str
    delivered_at: str | None
    last_attempt: DeliveryAttempt | None


class DeliveryDetail(Delivery):
    """A delivery with the body it sends and every attempt."""

    payload: str
    attempt_log: list[DeliveryAttempt]


class DeliveryPage(ResponseModel):
    """A page of an endpoint's deliveries, newest first; pass next_cursor as `before` for the
    next."""

    data: list[Delivery]
    next_cursor: int | None
    has_more: bool


class Redelivering(ResponseModel):
    """How many deliveries are sent again."""

    redelivering: int


# ---- push, provider webhooks, health -----------------------------------------------------------


class PushConfig(ResponseModel):
    """Whether Web Push is on, and the VAPID public key to subscribe with."""

    enabled: bool
    public_key: str | None


class PushSubscription(ResponseModel):
    """A saved browser push subscription."""

    id: int
    endpoint: str
    created_at: str


class WebhookReceipt(ResponseModel):
    """A provider webhook recorded, and what came of it."""

    received: bool
    outcome: str


class Health(ResponseModel):
    """The process is up."""

    status: str


class Readiness(ResponseModel):
    """PostgreSQL, Redis and the event bus all reachable."""

    status: str
    checks: dict[str, str]
