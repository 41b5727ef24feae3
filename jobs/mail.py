"""Email over SMTP (aiosmtplib), for receipts."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib

from ledger.receipts import ReceiptToSend


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    use_tls: bool = False  # implicit TLS (smtps://); otherwise STARTTLS when the server offers it
    timeout: float = 10.0


def _minor(amount: int) -> str:
    return f"{amount // 100:,}.{amount % 100:02d}"


def receipt_message(receipt: ReceiptToSend, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = receipt.email
    message["Subject"] = f"Your receipt {receipt.number}"
    creator = receipt.payee_name or receipt.payee_id
    message.set_content(
        f"Thank you for your tip to {creator}.\n\n"
        f"Receipt:  {receipt.number}\n"
        f"Amount:   {receipt.currency} {_minor(receipt.amount)}\n"
        f"Of which the platform's fee: {receipt.currency} {_minor(receipt.fee)}\n"
    )
    return message


async def send(config: SmtpConfig, message: EmailMessage) -> None:
    await aiosmtplib.send(
        message,
        hostname=config.host,
        port=config.port,
        username=config.username,
        password=config.password,
        use_tls=config.use_tls,
        start_tls=None if not config.use_tls else False,
        timeout=config.timeout,
    )
