"""One raw mail -> what the e-mail adapter mirrors (pure functions, no I/O).

A deliberately small standard-library version of the interface: quoted lines and
"-- " signatures are cut, HTML is reduced to text, automatons are told apart by their
headers.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import Message
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from enum import StrEnum

__all__ = [
    "Attachment",
    "MailKind",
    "ParsedMail",
    "html_to_text",
    "parse_message",
    "says_resolved",
]


class MailKind(StrEnum):
    HUMAN = "human"
    AUTO_REPLY = "auto_reply"
    OUT_OF_OFFICE = "out_of_office"
    BOUNCE = "bounce"
    OWN = "own"


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    size: int
    data: bytes | None


@dataclass(frozen=True)
class ParsedMail:
    message_id: str
    message_id_synthetic: bool
    in_reply_to: str | None
    references: tuple[str, ...]
    subject: str
    from_addr: str
    from_name: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    date: datetime | None
    kind: MailKind
    text: str
    full_text: str
    attachments: tuple[Attachment, ...]
    oversized: tuple[Attachment, ...]
    problems: tuple[str, ...]
    case_number: str | None
    tag: str | None
    headers: dict[str, str] = field(default_factory=dict)


_ID_RE = re.compile(r"<[^<>\s]+>")
_KEPT_HEADERS = (
    "auto-submitted",
    "precedence",
    "x-autoreply",
    "x-autorespond",
    "x-ticketbridge-key",
    "x-ticketbridge-visibility",
    "x-ticketbridge-op",
    "content-type",
)
_OOO_SUBJECT = re.compile(
    r"out of (the )?office|automatic reply|auto.?reply|vacation", re.IGNORECASE
)
_REPLY_HEADER = re.compile(
    r"^(on .+ wrote:|-----\s*original message\s*-----|from: .+)$", re.IGNORECASE
)


def _header(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
    except Exception:  # noqa: BLE001 - a malformed header reads as absent
        return ""
    return " ".join(str(value).split()) if value is not None else ""


def _ids(value: str) -> tuple[str, ...]:
    return tuple(_ID_RE.findall(value))


def _part_text(part: Message, problems: list[str]) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        problems.append(f"unknown charset {charset} (decoded as UTF-8 with replacement)")
        return payload.decode("utf-8", errors="replace")


def parse_message(
    raw: bytes,
    *,
    attachment_cap: int = 10 * 1024 * 1024,
    case_pattern: re.Pattern[str] | None = None,
    tag_pattern: re.Pattern[str] | None = None,
    own_id_domain: str | None = None,
) -> ParsedMail:
    if not raw:
        raise ValueError("empty message")
    problems: list[str] = []
    msg = message_from_bytes(raw, policy=policy.compat32)
    if msg.defects:
        problems.append(
            "broken MIME structure: " + ", ".join(type(d).__name__ for d in msg.defects)
        )
    message_id = next(iter(_ids(_header(msg, "Message-ID"))), "")
    synthetic = not message_id
    if synthetic:
        problems.append("no Message-ID")
        message_id = f"<{hashlib.sha256(raw).hexdigest()}@missing.invalid>"
    subject = _decoded(_header(msg, "Subject"))
    name, addr = parseaddr(_header(msg, "From"))
    date: datetime | None = None
    try:
        date = parsedate_to_datetime(_header(msg, "Date")).astimezone(UTC)
    except (TypeError, ValueError, IndexError):
        date = None
    plain: list[str] = []
    htmls: list[str] = []
    attachments: list[Attachment] = []
    oversized: list[Attachment] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        filename = part.get_filename()
        if filename or part.get_content_disposition() == "attachment":
            data = part.get_payload(decode=True)
            data = data if isinstance(data, bytes) else b""
            name_ = _decoded(filename or "attachment")
            if len(data) > attachment_cap:
                oversized.append(Attachment(name_, ctype, len(data), None))
                problems.append(
                    f"attachment {name_} ({len(data) / 1048576:.1f} MB) over the "
                    f"{attachment_cap / 1048576:g} MB cap"
                )
            else:
                attachments.append(Attachment(name_, ctype, len(data), data))
        elif ctype == "text/plain":
            plain.append(_part_text(part, problems))
        elif ctype == "text/html":
            htmls.append(_part_text(part, problems))
    full = "\n".join(plain) if plain else "\n".join(html_to_text(h) for h in htmls)
    headers = {h: _header(msg, h) for h in _KEPT_HEADERS if _header(msg, h)}
    kind = _kind(msg, headers, subject, addr, message_id, own_id_domain)
    case_number = None
    if case_pattern is not None:
        found = case_pattern.search(subject) or case_pattern.search(full)
        if found is not None:
            groups = found.groupdict()
            case_number = groups.get("case") or (
                found.group(1) if found.re.groups else found.group(0)
            )
    tag = None
    if tag_pattern is not None and (found := tag_pattern.search(subject)) is not None:
        tag = found.group(1) if found.re.groups else found.group(0)
    return ParsedMail(
        message_id=message_id,
        message_id_synthetic=synthetic,
        in_reply_to=next(iter(_ids(_header(msg, "In-Reply-To"))), None),
        references=_ids(_header(msg, "References")),
        subject=subject,
        from_addr=addr.lower(),
        from_name=_decoded(name),
        to=tuple(a.lower() for _, a in getaddresses([_header(msg, "To")]) if a),
        cc=tuple(a.lower() for _, a in getaddresses([_header(msg, "Cc")]) if a),
        date=date,
        kind=kind,
        text=_stripped(full),
        full_text=full.strip(),
        attachments=tuple(attachments),
        oversized=tuple(oversized),
        problems=tuple(problems),
        case_number=case_number,
        tag=tag,
        headers=headers,
    )


def _decoded(value: str) -> str:
    from email.header import decode_header, make_header

    try:
        return " ".join(str(make_header(decode_header(value))).split())
    except (LookupError, ValueError, UnicodeError):
        return value


def _kind(
    msg: Message,
    headers: dict[str, str],
    subject: str,
    addr: str,
    message_id: str,
    own_id_domain: str | None,
) -> MailKind:
    if "x-ticketbridge-key" in headers:
        return MailKind.OWN
    if own_id_domain and message_id.lower().endswith(f"@{own_id_domain.lower()}>"):
        return MailKind.OWN
    report = msg.get_content_type() == "multipart/report"
    local = addr.split("@", 1)[0].lower()
    if report or local in {"mailer-daemon", "postmaster"}:
        return MailKind.BOUNCE
    auto = headers.get("auto-submitted", "no").lower()
    if _OOO_SUBJECT.search(subject) and (auto != "no" or "x-autoreply" in headers):
        return MailKind.OUT_OF_OFFICE
    if _OOO_SUBJECT.match(subject):
        return MailKind.OUT_OF_OFFICE
    precedence = headers.get("precedence", "").lower()
    if auto != "no" or "x-autoreply" in headers or precedence in {"auto_reply", "bulk", "junk"}:
        return MailKind.AUTO_REPLY
    return MailKind.HUMAN


def _stripped(text: str) -> str:
    kept: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.rstrip() == "--" or _REPLY_HEADER.match(line.strip()):
            break
        if line.startswith(">"):
            continue
        kept.append(line)
    return "\n".join(kept).strip()


def says_resolved(text: str, phrases: tuple[str, ...]) -> bool:
    folded = " ".join(text.split()).casefold()
    return any(" ".join(p.split()).casefold() in folded for p in phrases if p.strip())


_TAG = re.compile(r"<(script|style)\b.*?</\1>|<[^>]+>", re.IGNORECASE | re.DOTALL)
_BREAK = re.compile(r"<\s*(br|/p|/div|/li|/tr|/h\d)\b[^>]*>", re.IGNORECASE)


def html_to_text(html_text: str) -> str:
    text = _BREAK.sub("\n", html_text)
    text = html.unescape(_TAG.sub("", text))
    return "\n".join(" ".join(line.split()) for line in text.splitlines()).strip()
