"""Parsing onboarding codes of mixed formats: codes per second.

    python benchmarks/parse_codes.py [--codes 70000] [--rounds 11]

A corpus of equal shares of plain serials, provisiond device URLs, LoRaWAN TR005 codes
(some with optional fields, some in the drafts' forms), ESP provisioning JSON (some not
valid JSON, as snprintf writes them), Matter QR payloads, Matter manual codes and claim
codes, shuffled; each round parses all of it with `provisiond.protocols.codes.parse` (the
format detected from the text, as the claiming pages do), in one process. Prints JSON lines:
each round, then the median.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from common import machine
from provisiond.domain.claims import new_claim_code
from provisiond.protocols import codes
from provisiond.protocols.codes import EspProvCode, LoRaWanCode, MatterQr


def corpus(n: int, rng: random.Random) -> list[str]:
    per = n // 7
    out: list[str] = []
    for i in range(per):
        out.append(f"70B3 d57e {i:08X}")
        out.append(f"https://provision.example.com/d/GEN-{i:06d}")
        eui = f"{rng.getrandbits(64):016X}"
        lorawan = LoRaWanCode(
            "70B3D57ED0000010",
            eui,
            "000AF8BE",
            owner_token="AB12" if i % 2 else "",
            serial_number=f"S{i}" if i % 3 == 0 else "",
        )
        text = lorawan.render()
        if i % 5 == 0:
            text = f"URN:LW:DP:70B3D57ED0000010:{eui}:000AF8BE:%V{i:04d}"
        out.append(text)
        esp = EspProvCode(
            name=f"PROV_{i:06X}",
            transport="ble" if i % 2 else "softap",
            pop=f"{rng.getrandbits(32):08x}",
        ).render()
        if i % 4 == 0:  # an unescaped quote, as firmware's snprintf writes it
            esp = esp.replace(f"PROV_{i:06X}", f'Bob"s {i}')
        out.append(esp)
        qr = MatterQr(
            0xFFF1, 0x8000, rng.randrange(4096), rng.randrange(1, 99999998), flow=i % 3, discovery=4
        )
        out.append(qr.render())
        out.append(qr.manual().render())
        out.append(new_claim_code())
    rng.shuffle(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", type=int, default=70_000)
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()
    print(json.dumps({"machine": machine()}), flush=True)
    texts = corpus(args.codes, random.Random(5))
    parse = codes.parse
    formats = {}
    for t in texts:  # warm-up, and a check that every code parses to its format
        formats[parse(t).FORMAT] = formats.get(parse(t).FORMAT, 0) + 1
    rates = []
    for round_no in range(1, args.rounds + 1):
        started = time.perf_counter()
        for t in texts:
            parse(t)
        rate = len(texts) / (time.perf_counter() - started)
        rates.append(rate)
        print(
            json.dumps({"round": round_no, "codes": len(texts), "codes_per_second": round(rate)}),
            flush=True,
        )
    print(
        json.dumps(
            {
                "codes": len(texts),
                "formats": formats,
                "median_codes_per_second": round(statistics.median(rates)),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
