"""The sandbox wallet's merchant gateway, wire-compatible with the Alipay open platform.

Pure functions over ``str``: no I/O, no clock, no randomness except :func:`generate_rsa2_keypair`.
The gateway (``/wallet/gateway.do``) takes the platform's common request parameters as a query
string or a form, signed RSA2 (SHA256withRSA, PKCS#1 v1.5, base64) with the app's private key;
it answers ``{"<method, dots as underscores>_response": {...}, "sign": "..."}`` signed with the
wallet's key, and POSTs signed trade-status notifications to the request's ``notify_url``.

Sources, and what each decides here:

- Alipay open platform, "自行实现签名" (sign a request yourself): drop ``sign`` and every
  parameter with an empty value, sort by key in ascending ASCII order, join ``key=value`` with
  ``&``, raw values (no URL encoding), sign the UTF-8 bytes.  ``sign_type`` IS signed.
- Alipay open platform, "自行实现验签" (verify yourself): a synchronous response is verified
  over the exact text of the ``<method>_response`` value; an asynchronous notification over
  every parameter but ``sign`` and ``sign_type``, sorted the same way.
- python-alipay-sdk 3.4.0 (PyPI, ``import alipay``; the acceptance client), read in
  ``alipay/__init__.py``:
  ``BaseAliPay.build_body`` sends app_id, method, charset=utf-8, sign_type, timestamp
  (local ``datetime.now()``, ``%Y-%m-%d %H:%M:%S``), version=1.0, biz_content and
  notify_url/return_url when not empty, and never ``format``;
  ``_ordered_data`` dumps dict values with ``json.dumps(v, separators=(',', ':'))`` (ASCII,
  ``\\uXXXX`` escapes) and sorts the items; ``sign_data`` signs ``"&".join(k=v)`` over every
  key but ``sign`` - empty values included - and sends ``k=quote_plus(v)`` as a GET query;
  ``_verify_and_return_sync_response`` raises if the reply has no ``sign`` or has an
  ``error_response``, else cuts the text to verify with ``_get_string_to_be_signed``
  (from the first ``{`` after the first occurrence of the response key to its matching
  ``}``, counting braces *without* regard to JSON strings) and returns ``json.loads`` of it;
  ``verify(data, signature)`` pops ``sign_type`` (which must equal its own), keeps every
  other key - empty values included - and checks the sorted ``k=v`` string.
- alipay-sdk for Node.js (npm ``alipay-sdk``, ``AlipaySdk#formatExecHttpResponse``): a real
  ``isv.invalid-signature`` reply is a signed ``<method>_response`` whose sub_msg quotes the
  gateway's signing string with ``&`` written ``&amp;``; ``error_response`` carries errors
  found before the method is known.
- Alipay open platform, "公共错误码" (common error codes, doc 105806) and the error tables
  of alipay.trade.pay / .precreate / .query / .cancel / .close / .refund: the codes and
  sub-codes in :data:`SUB_CODES`.
- Alipay open platform, "异步通知说明" (trade status sync notification): the fields of
  :data:`NOTIFICATION_FIELDS`; the merchant answers the 7 characters ``success``.

Wire choices made here for compatibility with both the platform and python-alipay-sdk:

- A request verifies if its signature matches the platform's signing string; when the
  request carries empty values, the python-alipay-sdk string (empty values kept) is accepted
  too, since that SDK signs them.  Notifications never carry empty values, so both rules agree.
- Response JSON is compact, UTF-8, with ``{`` and ``}`` inside strings written ``\\u007b`` /
  ``\\u007d`` so that python-alipay-sdk's brace counting finds the exact signed text.

Every bad request raises :class:`GatewayError`, carrying the platform's code, msg, sub_code
and sub_msg; ``field`` names the parameter at fault ("app_id", "biz_content.total_amount").
"""

from __future__ import annotations

import base64
import binascii
import datetime
import decimal
import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlencode

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from paypos import limits

__all__ = [
    "AMOUNT_MINOR_MAX",
    "CHARSET",
    "CODE_MSG",
    "CODE_SUCCESS",
    "ERROR_RESPONSE_KEY",
    "FORMAT",
    "FORM_CHARS_MAX",
    "FORM_PARAMS_MAX",
    "NOTIFICATION_ACK",
    "NOTIFICATION_FIELDS",
    "NOTIFICATION_UNSIGNED_KEYS",
    "NOTIFY_RETRY_DELAYS_S",
    "NOTIFY_TYPE_TRADE_STATUS_SYNC",
    "REQUEST_UNSIGNED_KEYS",
    "RSA2_KEY_BITS_MIN",
    "SIGN_TYPE",
    "SUB_CODES",
    "TIMESTAMP_FORMAT",
    "TRADE_METHODS",
    "TRADE_STATUSES",
    "VERSION",
    "GatewayError",
    "GatewayRequest",
    "KeyFormatError",
    "SubCode",
    "business_error",
    "decode_form",
    "encode_form",
    "encode_response",
    "format_amount",
    "format_timestamp",
    "generate_rsa2_keypair",
    "is_notification_acknowledged",
    "notification_signing_string",
    "parse_amount",
    "parse_request",
    "parse_timestamp",
    "response_key",
    "sign_notification",
    "sign_rsa2",
    "signing_string",
    "success",
    "trade_status_sync_params",
    "verify_notification",
    "verify_request",
    "verify_rsa2",
]

# --- common parameters --------------------------------------------------------------------
CHARSET = "utf-8"
FORMAT = "JSON"
SIGN_TYPE = "RSA2"
VERSION = "1.0"
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"  # the platform's yyyy-MM-dd HH:mm:ss, GMT+8
# Alipay: "RSA2 (SHA256WithRSA) ... 强制要求 RSA 密钥的长度至少为 2048".
RSA2_KEY_BITS_MIN = 2048
# Longest value of each common parameter, from the platform's common-parameter table
# (String(32) app_id, String(128) method, String(256) notify_url / return_url).
_COMMON_CHARS_MAX = {
    "app_id": 32,
    "method": 128,
    "notify_url": 256,
    "return_url": 256,
    "app_auth_token": 40,
    "sign": 1024,  # 344 for a 2048-bit key; room for 4096-bit keys
}
# A request carries the common parameters and biz_content; more keys than this is abuse.
FORM_PARAMS_MAX = 32
FORM_CHARS_MAX = limits.http_request_body_bytes_max

TRADE_METHODS = frozenset(
    {
        "alipay.trade.pay",
        "alipay.trade.precreate",
        "alipay.trade.create",
        "alipay.trade.query",
        "alipay.trade.cancel",
        "alipay.trade.close",
        "alipay.trade.refund",
        "alipay.trade.fastpay.refund.query",
    }
)
ERROR_RESPONSE_KEY = "error_response"
_METHOD_SYNTAX = re.compile(r"[a-z][a-z0-9]*(?:\.[a-z][a-z0-9]*)+")
_TIMESTAMP_SYNTAX = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")

# --- signing --------------------------------------------------------------------------------
REQUEST_UNSIGNED_KEYS = frozenset({"sign"})
NOTIFICATION_UNSIGNED_KEYS = frozenset({"sign", "sign_type"})

# --- trades and notifications -------------------------------------------------------------
TRADE_STATUSES = ("WAIT_BUYER_PAY", "TRADE_CLOSED", "TRADE_SUCCESS", "TRADE_FINISHED")
NOTIFY_TYPE_TRADE_STATUS_SYNC = "trade_status_sync"
NOTIFICATION_ACK = "success"
# "异步通知说明": without ``success`` the platform sends 8 notifications within 25 hours,
# the first and then 7 more, each 4m, 10m, 10m, 1h, 2h, 6h, 15h after the previous one.
NOTIFY_RETRY_DELAYS_S = (4 * 60, 10 * 60, 10 * 60, 3600, 2 * 3600, 6 * 3600, 15 * 3600)
NOTIFICATION_FIELDS = (
    "notify_time", "notify_type", "notify_id", "app_id", "auth_app_id", "charset", "version",
    "sign_type", "sign", "trade_no", "out_trade_no", "out_biz_no", "buyer_id",
    "buyer_logon_id", "seller_id", "seller_email", "trade_status", "total_amount",
    "receipt_amount", "invoice_amount", "buyer_pay_amount", "point_amount", "refund_fee",
    "subject", "body", "gmt_create", "gmt_payment", "gmt_refund", "gmt_close",
    "fund_bill_list", "passback_params", "voucher_detail_list",
)  # fmt: skip

# --- amounts ----------------------------------------------------------------------------------
# total_amount: "单位为元，精确到小数点后两位，取值范围[0.01,100000000]".
AMOUNT_MINOR_MAX = 100_000_000_00
_AMOUNT_SYNTAX = re.compile(r"([0-9]{1,9})(?:\.([0-9]{1,2}))?")

# --- codes --------------------------------------------------------------------------------------
CODE_SUCCESS = "10000"
CODE_MSG = {
    "10000": "Success",
    "20000": "Service Currently Unavailable",
    "20001": "Insufficient Token Permissions",
    "40001": "Missing Required Arguments",
    "40002": "Invalid Arguments",
    "40004": "Business Failed",
    "40006": "Insufficient Permissions",
}


class SubCode(NamedTuple):
    """One documented sub_code: its code, the sub_msg the platform sends, what it means."""

    code: str
    sub_code: str
    sub_msg: str
    meaning: str


_SUB_CODE_ROWS = (
    # 公共错误码 (doc 105806): the gateway's own checks.
    ("20000", "isp.unknow-error", "系统繁忙", "service unavailable, retry"),
    ("40001", "isv.missing-method", "缺少方法名参数", "method is missing"),
    ("40001", "isv.missing-signature", "缺少签名参数", "sign is missing"),
    ("40001", "isv.missing-signature-type", "缺少签名类型参数", "sign_type is missing"),
    ("40001", "isv.missing-signature-key", "缺少签名配置", "the app has no public key"),
    ("40001", "isv.missing-app-id", "缺少AppID参数", "app_id is missing"),
    ("40001", "isv.missing-timestamp", "缺少时间戳参数", "timestamp is missing"),
    ("40001", "isv.missing-version", "缺少版本参数", "version is missing"),
    ("40002", "isv.invalid-parameter", "参数无效", "a parameter is malformed"),
    ("40002", "isv.invalid-method", "不存在的方法名", "no such method"),
    ("40002", "isv.invalid-format", "无效数据格式", "format is not JSON"),
    ("40002", "isv.invalid-signature-type", "无效签名类型", "sign_type is not RSA2"),
    (
        "40002",
        "isv.invalid-signature",
        "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为：",
        "the signature does not verify with the app's public key",
    ),
    ("40002", "isv.invalid-app-id", "无效的AppID参数", "no such app"),
    ("40002", "isv.invalid-timestamp", "非法的时间戳参数", "timestamp is malformed"),
    ("40002", "isv.invalid-charset", "字符集错误", "charset is not utf-8"),
    # Business errors (40004), from the alipay.trade.* error tables.
    ("40004", "ACQ.SYSTEM_ERROR", "系统错误", "system error, retry"),
    ("40004", "ACQ.INVALID_PARAMETER", "参数无效", "a business parameter is invalid"),
    ("40004", "ACQ.ACCESS_FORBIDDEN", "无权限使用接口", "the app may not use this method"),
    ("40004", "ACQ.TOTAL_FEE_EXCEED", "订单金额超过限额", "amount above the limit"),
    ("40004", "ACQ.PAYMENT_AUTH_CODE_INVALID", "支付授权码无效", "payment code invalid"),
    ("40004", "ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改", "out_trade_no reused with other data"),
    ("40004", "ACQ.TRADE_HAS_SUCCESS", "交易已被支付", "the trade is already paid"),
    ("40004", "ACQ.TRADE_HAS_CLOSE", "交易已经关闭", "the trade is closed"),
    ("40004", "ACQ.BUYER_BALANCE_NOT_ENOUGH", "买家余额不足", "buyer's balance too low"),
    ("40004", "ACQ.TRADE_NOT_EXIST", "交易不存在", "no such trade"),
    ("40004", "ACQ.TRADE_STATUS_ERROR", "交易状态不合法", "not allowed in the trade's state"),
    (
        "40004",
        "ACQ.REASON_TRADE_STATUS_INVALID",
        "交易状态不合法",
        "only a WAIT_BUYER_PAY trade can be closed",
    ),
    ("40004", "ACQ.TRADE_NOT_ALLOW_REFUND", "当前交易不允许退款", "the trade cannot be refunded"),
    ("40004", "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限", "refund above what is left"),
    ("40004", "ACQ.SELLER_BALANCE_NOT_ENOUGH", "卖家余额不足", "merchant's balance too low"),
)
SUB_CODES: Mapping[str, SubCode] = {row[1]: SubCode(*row) for row in _SUB_CODE_ROWS}


class GatewayError(ValueError):
    """A request the gateway refuses, as the platform's code / msg / sub_code / sub_msg.

    ``str(error)`` is an English rule naming the field, for logs; :meth:`body` is what goes on
    the wire.  ``method`` is the request's method once it is known to be valid (the response
    key), ``None`` before (the answer is then an ``error_response``).
    """

    def __init__(
        self, sub_code: str, detail: str, *, field: str | None = None, sub_msg: str | None = None
    ) -> None:
        entry = SUB_CODES.get(sub_code)
        if entry is None:
            raise KeyError(f"sub_code {sub_code!r} is not in the documented table")
        super().__init__(f"{field}: {detail}" if field else detail)
        self.code = entry.code
        self.msg = CODE_MSG[entry.code]
        self.sub_code = sub_code
        self.sub_msg = entry.sub_msg if sub_msg is None else sub_msg
        self.field = field
        self.method: str | None = None

    def body(self) -> dict[str, str]:
        """The ``<method>_response`` / ``error_response`` value for this error."""
        return {
            "code": self.code,
            "msg": self.msg,
            "sub_code": self.sub_code,
            "sub_msg": self.sub_msg,
        }


class KeyFormatError(ValueError):
    """A key is not an RSA key of at least :data:`RSA2_KEY_BITS_MIN` bits in PEM or base64 DER."""


def success(fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A successful response body: code 10000, msg Success, then ``fields`` in order."""
    return {"code": CODE_SUCCESS, "msg": CODE_MSG[CODE_SUCCESS], **(fields or {})}


def business_error(sub_code: str, fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A 40004 Business Failed body for a documented ACQ sub_code, then ``fields``."""
    entry = SUB_CODES[sub_code]
    if entry.code != "40004":
        raise ValueError(f"{sub_code} is a gateway error ({entry.code}), not a business one")
    head = {"code": entry.code, "msg": CODE_MSG[entry.code], "sub_code": sub_code}
    return {**head, "sub_msg": entry.sub_msg, **(fields or {})}


# --- signing strings -------------------------------------------------------------------------


def signing_string(
    params: Mapping[str, str],
    *,
    unsigned_keys: Iterable[str] = REQUEST_UNSIGNED_KEYS,
    skip_empty: bool = True,
) -> str:
    """The text an RSA2 signature covers: sorted ``key=value`` pairs joined with ``&``.

    By default the platform's request rule: every key but ``sign``, empty values dropped,
    values raw (not URL-encoded).  Keys sort by code point, which is the platform's "ASCII
    order" for the ASCII keys it uses.  ``skip_empty=False`` is python-alipay-sdk's
    ``sign_data``, which keeps ``key=`` for an empty value.
    """
    excluded = frozenset(unsigned_keys)
    items = sorted(
        (key, value)
        for key, value in params.items()
        if key not in excluded and (value != "" or not skip_empty)
    )
    return "&".join(f"{key}={value}" for key, value in items)


def notification_signing_string(params: Mapping[str, str]) -> str:
    """The text a notification's signature covers: every key but ``sign`` and ``sign_type``.

    Empty values are kept, as python-alipay-sdk's ``verify`` and the Java SDK's
    ``AlipaySignature.getSignCheckContentV1`` keep them; :func:`sign_notification` never
    sends one, so the platform's rule gives the same text.
    """
    return signing_string(params, unsigned_keys=NOTIFICATION_UNSIGNED_KEYS, skip_empty=False)


# --- RSA2 ---------------------------------------------------------------------------------------


def _pem_or_der(text: str, kind: str) -> tuple[bytes, bool]:
    if not isinstance(text, str) or not text.strip():
        raise KeyFormatError(f"{kind} key must be a non-empty PEM or base64 string")
    if "-----BEGIN" in text:
        return text.strip().encode("ascii", "replace"), True
    try:  # the platform's key tool prints bare base64 of the DER, without PEM armour
        return base64.b64decode("".join(text.split()), validate=True), False
    except (binascii.Error, ValueError) as exc:
        raise KeyFormatError(f"{kind} key is neither PEM nor base64 DER") from exc


def _require_rsa2(key: object, kind: str) -> None:
    if not isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        raise KeyFormatError(f"{kind} key is not an RSA key")
    if key.key_size < RSA2_KEY_BITS_MIN:
        raise KeyFormatError(f"{kind} key has {key.key_size} bits, RSA2 needs {RSA2_KEY_BITS_MIN}")


@functools.lru_cache(maxsize=64)
def _private_key(text: str) -> rsa.RSAPrivateKey:
    data, is_pem = _pem_or_der(text, "private")
    try:
        if is_pem:
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_der_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFormatError("private key does not parse (PKCS#8 or PKCS#1, no password)") from exc
    _require_rsa2(key, "private")
    return key  # type: ignore[return-value]


@functools.lru_cache(maxsize=256)
def _public_key(text: str) -> rsa.RSAPublicKey:
    data, is_pem = _pem_or_der(text, "public")
    try:
        if is_pem:
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(data)
    except (ValueError, TypeError) as exc:
        raise KeyFormatError("public key does not parse (SubjectPublicKeyInfo or PKCS#1)") from exc
    _require_rsa2(key, "public")
    return key  # type: ignore[return-value]


def sign_rsa2(message: str, private_key: str) -> str:
    """RSA2: SHA256withRSA, PKCS#1 v1.5, over the UTF-8 bytes; base64 on one line."""
    signature = _private_key(private_key).sign(
        message.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256()
    )
    return base64.b64encode(signature).decode("ascii")


def verify_rsa2(message: str, signature: str, public_key: str) -> bool:
    """True when ``signature`` (base64) is RSA2 over ``message``'s UTF-8 bytes; never raises
    for a bad signature, only for a bad key (:class:`KeyFormatError`)."""
    key = _public_key(public_key)
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, message.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError, TypeError):
        return False
    return True


def generate_rsa2_keypair() -> tuple[str, str]:
    """A fresh 2048-bit RSA key pair for a sandbox app or the wallet: (PKCS#8 private PEM,
    SubjectPublicKeyInfo public PEM), the forms python-alipay-sdk's ``RSA.importKey`` reads.
    The one function here that draws randomness (the OS's, through ``cryptography``)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA2_KEY_BITS_MIN)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")
    return private_pem, public_pem


# --- forms -----------------------------------------------------------------------------------


def decode_form(text: str) -> dict[str, str]:
    """A query string or ``application/x-www-form-urlencoded`` body (UTF-8, ``+`` is a space)
    as a dict; blank values kept (they may be signed), a key given twice refused."""
    if len(text) > FORM_CHARS_MAX:
        raise GatewayError("isv.invalid-parameter", f"form over {FORM_CHARS_MAX} characters")
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text),
                          encoding="utf-8", errors="strict", max_num_fields=FORM_PARAMS_MAX)
    except (ValueError, UnicodeDecodeError) as exc:
        raise GatewayError("isv.invalid-parameter", f"form does not parse: {exc}") from exc
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise GatewayError("isv.invalid-parameter", "parameter given twice", field=key)
        params[key] = value
    return params


def encode_form(params: Mapping[str, str]) -> str:
    """``application/x-www-form-urlencoded`` UTF-8 text of ``params`` (a notification's body)."""
    return urlencode(list(params.items()), encoding="utf-8")


# --- requests ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GatewayRequest:
    """A request whose common parameters are well formed; its signature is not yet checked.

    ``params`` is every parameter as received (what :func:`verify_request` checks);
    ``biz_content`` is the decoded JSON object, numbers with a fraction as ``Decimal``.
    """

    app_id: str
    method: str
    timestamp: datetime.datetime
    sign: str
    biz_content: dict[str, Any]
    notify_url: str | None
    return_url: str | None
    app_auth_token: str | None
    params: Mapping[str, str] = field(repr=False)


def _present(params: Mapping[str, str], key: str, sub_code: str) -> str:
    value = params.get(key)
    if value is None or value == "":
        raise GatewayError(sub_code, "is required", field=key)
    return value


def _bounded(params: Mapping[str, str], key: str) -> str | None:
    value = params.get(key) or None
    if value is not None and len(value) > _COMMON_CHARS_MAX[key]:
        raise GatewayError(
            "isv.invalid-parameter", f"at most {_COMMON_CHARS_MAX[key]} characters", field=key
        )
    return value


def _require_method(params: Mapping[str, str], methods: frozenset[str]) -> str:
    method = _present(params, "method", "isv.missing-method")
    if method not in methods:
        raise GatewayError("isv.invalid-method", f"unknown method {method[:64]!r}", field="method")
    return method


def _require_constants(params: Mapping[str, str]) -> None:
    fmt = params.get("format") or FORMAT  # optional; python-alipay-sdk never sends it
    if fmt.upper() != FORMAT:
        raise GatewayError("isv.invalid-format", "must be JSON", field="format")
    charset = params.get("charset") or ""
    if charset.lower() != CHARSET:
        raise GatewayError("isv.invalid-charset", "must be utf-8", field="charset")
    sign_type = _present(params, "sign_type", "isv.missing-signature-type")
    if sign_type != SIGN_TYPE:
        raise GatewayError("isv.invalid-signature-type", "must be RSA2", field="sign_type")
    if _present(params, "version", "isv.missing-version") != VERSION:
        raise GatewayError("isv.invalid-parameter", "must be 1.0", field="version")


def _require_url(value: str | None, key: str) -> str | None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise GatewayError("isv.invalid-parameter", "must be an http or https URL", field=key)
    return value


def parse_request(
    params: Mapping[str, str], *, methods: Iterable[str] = TRADE_METHODS
) -> GatewayRequest:
    """Check a request's common parameters, in this order, answering the first failure.

    method (missing: 40001 isv.missing-method; unknown: 40002 isv.invalid-method), app_id,
    sign, then format (optional, JSON), charset (utf-8), sign_type (RSA2), version (1.0),
    timestamp (``yyyy-MM-dd HH:mm:ss``; its skew is not checked, python-alipay-sdk sends
    local time), notify_url / return_url (http or https), biz_content (a JSON object,
    ``{}`` when absent).  Raises :class:`GatewayError` naming the first failure.
    """
    method = _require_method(params, frozenset(methods))
    try:
        app_id = _present(params, "app_id", "isv.missing-app-id")
        _bounded(params, "app_id")
        sign = _present(params, "sign", "isv.missing-signature")
        _bounded(params, "sign")
        _require_constants(params)
        timestamp = parse_timestamp(_present(params, "timestamp", "isv.missing-timestamp"))
        return GatewayRequest(
            app_id=app_id,
            method=method,
            timestamp=timestamp,
            sign=sign,
            biz_content=_biz_content(params.get("biz_content") or "{}"),
            notify_url=_require_url(_bounded(params, "notify_url"), "notify_url"),
            return_url=_require_url(_bounded(params, "return_url"), "return_url"),
            app_auth_token=_bounded(params, "app_auth_token"),
            params=dict(params),
        )
    except GatewayError as error:
        error.method = method
        raise


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"key {key[:32]!r} given twice")
        obj[key] = value
    return obj


def _biz_content(text: str) -> dict[str, Any]:
    try:
        value = json.loads(
            text,
            parse_float=decimal.Decimal,
            parse_constant=_refuse_constant,
            object_pairs_hook=_unique_object,
        )
    except (ValueError, RecursionError) as exc:
        raise GatewayError(
            "isv.invalid-parameter", f"not JSON: {exc}", field="biz_content"
        ) from exc
    if not isinstance(value, dict):
        raise GatewayError("isv.invalid-parameter", "must be a JSON object", field="biz_content")
    return value


def verify_request(request: GatewayRequest, app_public_key: str) -> None:
    """Check the request's signature with the app's public key, or raise 40002
    isv.invalid-signature whose sub_msg quotes the gateway's signing string (with ``&``
    written ``&amp;``), as the platform does."""
    expected = signing_string(request.params)
    if verify_rsa2(expected, request.sign, app_public_key):
        return
    has_empty = any(value == "" for value in request.params.values())
    if has_empty and verify_rsa2(
        signing_string(request.params, skip_empty=False), request.sign, app_public_key
    ):
        return  # python-alipay-sdk signs empty values; the platform's rule drops them
    error = GatewayError(
        "isv.invalid-signature",
        "does not verify with the app's public key",
        field="sign",
        sub_msg=SUB_CODES["isv.invalid-signature"].sub_msg + expected.replace("&", "&amp;"),
    )
    error.method = request.method
    raise error


# --- responses ---------------------------------------------------------------------------------


def response_key(method: str | None) -> str:
    """``alipay.trade.pay`` -> ``alipay_trade_pay_response``; ``None`` -> ``error_response``."""
    if method is None:
        return ERROR_RESPONSE_KEY
    if not _METHOD_SYNTAX.fullmatch(method):
        raise ValueError(f"method {method[:64]!r} is not dotted lower-case words")
    return method.replace(".", "_") + "_response"


def _require_json_value(value: object, path: str) -> None:
    if isinstance(value, float):
        raise TypeError(f"{path}: floats never go on the wire, format amounts as strings")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path}: object keys must be str")
            _require_json_value(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _require_json_value(item, f"{path}[{index}]")
    elif value is not None and not isinstance(value, (str, int)):
        raise TypeError(f"{path}: {type(value).__name__} is not a JSON value")


def _escape_braces_in_strings(text: str) -> str:
    """Write ``{`` / ``}`` inside JSON strings as ``\\u007b`` / ``\\u007d``: the same JSON
    value, but python-alipay-sdk's brace counting (blind to strings) now ends where the
    object ends."""
    out: list[str] = []
    in_string = escaped = False
    for char in text:
        if in_string and not escaped and char in "{}":
            out.append("\\u007b" if char == "{" else "\\u007d")
            continue
        out.append(char)
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = in_string
        elif char == '"':
            in_string = not in_string
    return "".join(out)


def encode_response(
    method: str | None, body: Mapping[str, Any], private_key: str | None
) -> str:
    """``{"<method>_response":<body>,"sign":"<RSA2 over <body>'s exact text>"}``.

    ``<body>`` is compact UTF-8 JSON (``ensure_ascii=False``, ``(",", ":")``) in ``body``'s
    key order with braces inside strings escaped; the signature covers exactly that text,
    which is what python-alipay-sdk, the Java SDK and the Node SDK cut out and verify.
    ``method=None`` gives ``error_response``; ``private_key=None`` leaves the reply unsigned
    (no ``sign`` key; python-alipay-sdk then raises ``AliPayException`` with the code), for
    errors found before the app, and so its key, is known.
    """
    _require_json_value(body, "body")
    content = _escape_braces_in_strings(
        json.dumps(dict(body), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    )
    key_json = json.dumps(response_key(method))
    if private_key is None:
        return f"{{{key_json}:{content}}}"
    return f'{{{key_json}:{content},"sign":{json.dumps(sign_rsa2(content, private_key))}}}'


# --- notifications -----------------------------------------------------------------------------


def trade_status_sync_params(
    *,
    app_id: str,
    notify_id: str,
    notify_time: datetime.datetime,
    trade_no: str,
    out_trade_no: str,
    trade_status: str,
    total_amount_minor: int,
    receipt_amount_minor: int | None = None,
    buyer_pay_amount_minor: int | None = None,
    gmt_create: datetime.datetime | None = None,
    gmt_payment: datetime.datetime | None = None,
    gmt_close: datetime.datetime | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The unsigned parameters of a ``trade_status_sync`` notification.

    Times are naive GMT+8 datetimes (the caller's clock); amounts are minor units (fen);
    ``notify_id`` is the caller's unique id; ``extra`` adds other documented fields
    (buyer_id, seller_id, subject, ...).  ``auth_app_id`` equals ``app_id``, as the platform
    sends it for an app acting for itself.  Sign with :func:`sign_notification`.
    """
    if trade_status not in TRADE_STATUSES:
        raise ValueError(f"trade_status {trade_status!r} is not one of {TRADE_STATUSES}")
    params = {
        "notify_time": format_timestamp(notify_time),
        "notify_type": NOTIFY_TYPE_TRADE_STATUS_SYNC,
        "notify_id": notify_id,
        "app_id": app_id,
        "auth_app_id": app_id,
        "charset": CHARSET,
        "version": VERSION,
        "sign_type": SIGN_TYPE,
        "trade_no": trade_no,
        "out_trade_no": out_trade_no,
        "trade_status": trade_status,
        "total_amount": format_amount(total_amount_minor),
    }
    optional_amounts = {
        "receipt_amount": receipt_amount_minor,
        "buyer_pay_amount": buyer_pay_amount_minor,
    }
    params.update({k: format_amount(v) for k, v in optional_amounts.items() if v is not None})
    optional_times = {"gmt_create": gmt_create, "gmt_payment": gmt_payment, "gmt_close": gmt_close}
    params.update({k: format_timestamp(v) for k, v in optional_times.items() if v is not None})
    for key, value in (extra or {}).items():
        if key not in NOTIFICATION_FIELDS or key in params or key == "sign":
            raise ValueError(f"extra field {key!r}: not a documented field, or already set")
        params[key] = value
    return params


def sign_notification(params: Mapping[str, str], private_key: str) -> dict[str, str]:
    """``params`` without empty values, with ``sign_type=RSA2`` and ``sign`` over every
    other key (the rule of python-alipay-sdk's ``verify`` and ``rsaCheckV1``)."""
    if params.get("sign_type", SIGN_TYPE) != SIGN_TYPE:
        raise ValueError("notifications are signed RSA2")
    signed = {key: value for key, value in params.items() if value != "" and key != "sign"}
    signed["sign_type"] = SIGN_TYPE
    signed["sign"] = sign_rsa2(notification_signing_string(signed), private_key)
    return signed


def verify_notification(params: Mapping[str, str], public_key: str) -> bool:
    """True when a notification's ``sign`` verifies over its other keys (merchant side)."""
    signature = params.get("sign")
    if not signature or params.get("sign_type", SIGN_TYPE) != SIGN_TYPE:
        return False
    return verify_rsa2(notification_signing_string(params), signature, public_key)


def is_notification_acknowledged(body: str) -> bool:
    """True when the merchant's answer is ``success`` (surrounding whitespace ignored)."""
    return body.strip() == NOTIFICATION_ACK


# --- amounts and times -------------------------------------------------------------------------
# Yuan strings <-> fen.  The protocol layer does not import paypos.domain, so this is its own
# two-decimal converter; paypos.domain.money does the general ISO 4217 conversion.


def parse_amount(value: object, *, field: str = "total_amount", zero_ok: bool = False) -> int:
    """A platform amount ("88.88", "88.8", "88", or an int / Decimal from biz_content JSON)
    as fen, exactly.  Refuses floats, signs, exponents, more than 2 decimals and amounts over
    100000000.00 (40004 ACQ.TOTAL_FEE_EXCEED); 0 only with ``zero_ok``."""
    if isinstance(value, bool) or not isinstance(value, (str, int, decimal.Decimal)):
        kind = type(value).__name__
        raise GatewayError(
            "ACQ.INVALID_PARAMETER", f"amount must be a decimal string, not {kind}", field=field
        )
    text = str(value)
    match = _AMOUNT_SYNTAX.fullmatch(text)
    if match is None:
        raise GatewayError(
            "ACQ.INVALID_PARAMETER", "amount must be yuan with at most 2 decimals", field=field
        )
    whole, fraction = match.group(1), match.group(2) or ""
    minor = int(whole) * 100 + int(fraction.ljust(2, "0"))
    if minor > AMOUNT_MINOR_MAX:
        raise GatewayError("ACQ.TOTAL_FEE_EXCEED", "amount above 100000000.00", field=field)
    if minor == 0 and not zero_ok:
        raise GatewayError("ACQ.INVALID_PARAMETER", "amount must be at least 0.01", field=field)
    return minor


def format_amount(minor: int) -> str:
    """Fen as the platform's yuan string with exactly 2 decimals: 8888 -> "88.88"."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise TypeError(f"amount must be an int of minor units, not {type(minor).__name__}")
    if not 0 <= minor <= AMOUNT_MINOR_MAX:
        raise ValueError(f"amount {minor} is outside 0..{AMOUNT_MINOR_MAX} minor units")
    return f"{minor // 100}.{minor % 100:02d}"


def parse_timestamp(text: str, *, field: str = "timestamp") -> datetime.datetime:
    """``yyyy-MM-dd HH:mm:ss`` as a naive datetime (the platform's clock is GMT+8)."""
    if not _TIMESTAMP_SYNTAX.fullmatch(text):
        raise GatewayError("isv.invalid-timestamp", "must be yyyy-MM-dd HH:mm:ss", field=field)
    try:
        return datetime.datetime.strptime(text, TIMESTAMP_FORMAT)
    except ValueError as exc:
        raise GatewayError("isv.invalid-timestamp", "is not a calendar time", field=field) from exc


def format_timestamp(moment: datetime.datetime) -> str:
    """A datetime as ``yyyy-MM-dd HH:mm:ss`` (seconds; no zone, the caller's GMT+8 clock)."""
    return moment.strftime(TIMESTAMP_FORMAT)
