"""The sandbox's TEST console users (docs/sandbox.md, docs/console.md): an owner and a cashier
for the café, an owner for the shop, one operator per operator role.

Their passwords are published test credentials, like the sandbox merchants' API keys. The
argon2id hashes below were made once from those passwords (argon2-cffi defaults), so seeding a
sandbox costs no hashing work; a changed hasher setting rehashes them at the next sign-in.
Ids are fixed, so every sandbox has the same users.
"""

from __future__ import annotations

from dataclasses import dataclass

from paypos.networks.sandbox.catalog import CAFE, SHOP


@dataclass(frozen=True, slots=True)
class SandboxConsoleUser:
    id: str
    email: str
    password: str
    password_hash: str
    role: str
    merchant_id: str | None
    display_name: str
    refund_limit_minor: int = 0


CONSOLE_USERS = (
    SandboxConsoleUser("cu_sandbox0000000cafe1", "owner@cafe.example", "sandbox-cafe-owner",
                       "$argon2id$v=19$m=65536,t=3,p=4$mT07AMF0LSfE+c151OKI/g$sHJC5UCRzIsXrnOnh7r3wZsoBoo4R8SxRuOZESZSoyU",
                       "owner", CAFE.merchant_id, "Café owner"),
    SandboxConsoleUser("cu_sandbox0000000cafe2", "cashier@cafe.example", "sandbox-cafe-cashier",
                       "$argon2id$v=19$m=65536,t=3,p=4$u8SpYxRpvsD8EvXRAQA+fA$CO60d4dZTIObMJxvPMhmj+IR2AHJkozteSo0c8AfxDE",
                       "cashier", CAFE.merchant_id, "Café cashier", refund_limit_minor=5_000),
    SandboxConsoleUser("cu_sandbox0000000shop1", "owner@shop.example", "sandbox-shop-owner",
                       "$argon2id$v=19$m=65536,t=3,p=4$GQeczH7JLlm/lOZd9VRhBQ$Xq/wxcRcxRVdju9iOtqmTLiSdFHRyJq6rVn+FEOPUuA",
                       "owner", SHOP.merchant_id, "Shop owner"),
    SandboxConsoleUser("cu_sandbox00000000ops1", "reviewer@ops.example", "sandbox-reviewer",
                       "$argon2id$v=19$m=65536,t=3,p=4$ztrPRJJyTK1VwBq0PWwGSg$ldv+3Fdfa/STE8inKwQ67vaLA0dOqBBX+JeHtqVfal8",
                       "reviewer", None, "Reviewer"),
    SandboxConsoleUser("cu_sandbox00000000ops2", "risk@ops.example", "sandbox-risk",
                       "$argon2id$v=19$m=65536,t=3,p=4$4VlMstZPidPBdb/rlzCnbw$Fl8wjQhjLkDYi0s1mEoFOGThA4I6tYVmeJR/ILmwBFc",
                       "risk", None, "Risk analyst"),
    SandboxConsoleUser("cu_sandbox00000000ops3", "finance@ops.example", "sandbox-finance",
                       "$argon2id$v=19$m=65536,t=3,p=4$egJK1aRUVb49s5pVtsyJpw$N9xhnJinFT12knk5pP4vvCTuqJx3QQY/PFWMiUefOWE",
                       "finance", None, "Finance"),
    SandboxConsoleUser("cu_sandbox00000000ops4", "admin@ops.example", "sandbox-admin",
                       "$argon2id$v=19$m=65536,t=3,p=4$ShLqK552/kshiXyzGhHEWQ$sRFY96Ohdd3xKh+C/6HQUKPWi2fqffKrTxvdHPGJ/ww",
                       "admin", None, "Administrator"),
)


def by_role(role: str, merchant_id: str | None = None) -> SandboxConsoleUser:
    return next(u for u in CONSOLE_USERS if u.role == role and (merchant_id is None or u.merchant_id == merchant_id))
