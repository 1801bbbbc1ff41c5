#!/usr/bin/env python3
"""Writes vectors.json: the digests the `hash` kind must give, computed by Python.

bcrypt digests come from `bcrypt.hashpw`, as the old poller made them; sha256 and
hmac-sha256 from `hashlib` and `hmac`; argon2 from argon2-cffi's `hash_secret_raw` with
argon2id's defaults (m=19456 KiB, t=2, p=1, 32 bytes).

Regenerate with:

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install bcrypt argon2-cffi
    /tmp/venv/bin/python crates/octoflow-steps/src/hash/gen_vectors.py

The secrets below are test values, not real ones.
"""

import hashlib
import hmac
import json
import pathlib

import argon2.low_level
import bcrypt

# Field values: strings are hashed as they are, other scalars as their JSON text.
INPUTS = [
    "12345",
    12345,
    "",
    "Zoë Ångström",
    "日本語テキスト",
    True,
    1.5,
    "a\u0000b",
    "x" * 72,
]

SECRETS = {
    "bcrypt_cost4": "$2b$04$N9qo8uLOickgx2ZMRZoMye",
    "bcrypt_2a": "$2a$04$N9qo8uLOickgx2ZMRZoMye",
    "bcrypt_cost12": "$2b$12$abcdefghijklmnopqrstuu",
    "sha_salt": "pepper-2024",
    "hmac_key": "hmac-key-for-tests",
    "argon2_salt": "argon2-salt-16by",
}


def text(value):
    return value if isinstance(value, str) else json.dumps(value)


def bcrypt_case(secret, inputs):
    digests = [
        bcrypt.hashpw(text(v).encode(), SECRETS[secret].encode()).decode() for v in inputs
    ]
    return {
        "algorithm": "bcrypt",
        "salt": secret,
        "inputs": inputs,
        "digests": digests,
        "stripped": [d[29:] for d in digests],
    }


def main():
    cases = [
        bcrypt_case("bcrypt_cost4", INPUTS),
        bcrypt_case("bcrypt_2a", INPUTS[:2]),
        # Cost 12 is slow (and slower still in a debug build): one value.
        bcrypt_case("bcrypt_cost12", ["12345"]),
        {
            "algorithm": "sha256",
            "inputs": INPUTS,
            "digests": [hashlib.sha256(text(v).encode()).hexdigest() for v in INPUTS],
        },
        {
            "algorithm": "sha256",
            "salt": "sha_salt",
            "inputs": INPUTS,
            "digests": [
                hashlib.sha256((SECRETS["sha_salt"] + text(v)).encode()).hexdigest()
                for v in INPUTS
            ],
        },
        {
            "algorithm": "hmac-sha256",
            "key": "hmac_key",
            "inputs": INPUTS,
            "digests": [
                hmac.new(
                    SECRETS["hmac_key"].encode(), text(v).encode(), hashlib.sha256
                ).hexdigest()
                for v in INPUTS
            ],
        },
        {
            "algorithm": "argon2",
            "salt": "argon2_salt",
            "inputs": INPUTS,
            "digests": [
                argon2.low_level.hash_secret_raw(
                    text(v).encode(),
                    SECRETS["argon2_salt"].encode(),
                    time_cost=2,
                    memory_cost=19456,
                    parallelism=1,
                    hash_len=32,
                    type=argon2.low_level.Type.ID,
                    version=19,
                ).hex()
                for v in INPUTS
            ],
        },
    ]
    out = {
        "generated_by": "gen_vectors.py (Python bcrypt {}, hashlib, hmac, argon2-cffi)".format(
            bcrypt.__version__
        ),
        "secrets": SECRETS,
        "cases": cases,
    }
    path = pathlib.Path(__file__).with_name("vectors.json")
    path.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
