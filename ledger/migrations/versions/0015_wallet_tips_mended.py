"""hub_wallet_tips mended twice more, as found in review of its purchase twin (0013):

- the platform fee is computed in numeric: amount times rate passed bigint's range for amounts near
  2^53 at rates above 1024 bps, and the batch failed with a numeric overflow (its commands then
  ran one at a time, that one answered 500) where ledger.money.platform_fee answers;
- a reference taken already (the key's record expired, its transfer did not) is refused where
  post_transfer refuses it: after the funds, so a tip the wallet cannot pay answers 402, as the
  SQLAlchemy path does, not 409.

Built from 0011's function text with those two changes only (each anchor found exactly once).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from importlib import import_module

from ledger.migrations.helpers import execute_script

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_0011 = import_module("ledger.migrations.versions.0011_outbox")
_SIGNATURE = _0011._SIGNATURE
_BEFORE = _0011._WALLET_TIPS_MENDED

_CHANGES = (
    (
        "            v_fee[r.i] := p_amount[r.i] * p_fee_bps[r.i] / 10000;"
        "  -- ledger.money.platform_fee\n",
        "            -- ledger.money.platform_fee, in numeric (may pass bigint's range)\n"
        "            v_fee[r.i] :=\n"
        "                floor(p_amount[r.i]::numeric * p_fee_bps[r.i] / 10000)::bigint;\n",
    ),
    (
        "    v_fan_name text[] := array_fill(NULL::text, ARRAY[n]);\n",
        "    v_fan_name text[] := array_fill(NULL::text, ARRAY[n]);\n"
        "    v_taken boolean[] := array_fill(false, ARRAY[n]);  -- its reference posted already\n",
    ),
    (
        """    LOOP
        v_status[r.i] := 409;
        v_body[r.i] := hub_error_body('duplicate_transfer',
            'a transfer with reference ' || p_reference[r.i] || ' exists', NULL);
        v_live[r.i] := false;
    END LOOP;
""",
        """    LOOP
        v_taken[r.i] := true;  -- refused in step 4, after the funds, as post_transfer does
    END LOOP;
""",
    ),
    (
        """        IF a_negative[j] OR a_left[j] - p_amount[i] >= a_held[j] THEN
            a_left[j] := a_left[j] - p_amount[i];
        ELSE
            v_status[i] := 402;
            v_body[i] := hub_error_body('insufficient_funds', 'the wallet account has too little '
                || p_currency[i] || ' for this transfer', 'amount');
            v_live[i] := false;
        END IF;
""",
        """        IF NOT (a_negative[j] OR a_left[j] - p_amount[i] >= a_held[j]) THEN
            v_status[i] := 402;
            v_body[i] := hub_error_body('insufficient_funds', 'the wallet account has too little '
                || p_currency[i] || ' for this transfer', 'amount');
            v_live[i] := false;
        ELSIF v_taken[i] THEN
            v_status[i] := 409;
            v_body[i] := hub_error_body('duplicate_transfer',
                'a transfer with reference ' || p_reference[i] || ' exists', NULL);
            v_live[i] := false;
        ELSE
            a_left[j] := a_left[j] - p_amount[i];
        END IF;
""",
    ),
)

_AFTER = _BEFORE
for _old, _new in _CHANGES:
    assert _AFTER.count(_old) == 1, _old
    _AFTER = _AFTER.replace(_old, _new)


def _replace(definition: str) -> str:
    return definition.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1) + (
        f"\nALTER FUNCTION hub_wallet_tips({_SIGNATURE}) SET enable_seqscan = off;\n"
    )


UPGRADE = _replace(_AFTER)
DOWNGRADE = _replace(_BEFORE)


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
