#!/usr/bin/env python3
"""Write datasets/arith-steps/: short arithmetic word problems answered in 1-2 lines of working + `Answer: N`.

The offline demo fine-tunes SmolLM2-135M on it for a few minutes on a CPU; the change is easy to see: the base
model rambles, the tuned one answers in the fixed short format. Deterministic: the same seed writes the same bytes.

    python scripts/make_demo_dataset.py            # 400 rows -> data.jsonl, first 30 -> sample.jsonl
    python scripts/make_demo_dataset.py --rows 600 --seed 7
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

NAMES = [
    "Ava",
    "Ben",
    "Chloe",
    "Dev",
    "Emma",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jack",
    "Kira",
    "Liam",
    "Maya",
    "Noah",
    "Olga",
    "Priya",
    "Quinn",
    "Rosa",
    "Sam",
    "Tara",
    "Umar",
    "Vera",
    "Wes",
    "Yuki",
    "Zoe",
]
ITEMS = ["apples", "stickers", "marbles", "books", "pencils", "cookies", "stamps", "shells", "cards", "balloons"]
THINGS = [
    ("notebook", "notebooks"),
    ("sandwich", "sandwiches"),
    ("ticket", "tickets"),
    ("pen", "pens"),
    ("juice box", "juice boxes"),
    ("comic", "comics"),
]
PLACES = [
    ("bus", "passengers"),
    ("library", "readers"),
    ("park", "children"),
    ("cafe", "customers"),
    ("classroom", "students"),
]


def _add(r):
    n, item, a, b = r.choice(NAMES), r.choice(ITEMS), r.randint(3, 60), r.randint(2, 40)
    q = r.choice(
        [
            f"{n} has {a} {item}. A friend gives {n} {b} more. How many {item} does {n} have now?",
            f"There are {a} {item} in a box and {b} more are put in. How many {item} are in the box?",
        ]
    )
    return q, [f"{a} + {b} = {a + b}"], a + b


def _sub(r):
    n, item = r.choice(NAMES), r.choice(ITEMS)
    a = r.randint(10, 90)
    b = r.randint(1, a - 1)
    q = r.choice(
        [
            f"{n} had {a} {item} and gave away {b}. How many {item} are left?",
            f"A shop had {a} {item}. It sold {b} of them. How many {item} does it have now?",
        ]
    )
    return q, [f"{a} - {b} = {a - b}"], a - b


def _mul(r):
    item, a, b = r.choice(ITEMS), r.randint(2, 12), r.randint(2, 12)
    q = r.choice(
        [
            f"There are {a} bags with {b} {item} in each bag. How many {item} are there in total?",
            f"{r.choice(NAMES)} fills {a} rows with {b} {item} in each row. How many {item} is that?",
        ]
    )
    return q, [f"{a} × {b} = {a * b}"], a * b


def _div(r):
    n, item, each, k = r.choice(NAMES), r.choice(ITEMS), r.randint(2, 12), r.randint(2, 9)
    total = each * k
    q = r.choice(
        [
            f"{n} shares {total} {item} equally among {k} friends. How many {item} does each friend get?",
            f"{total} {item} are packed into {k} equal boxes. How many {item} go in each box?",
        ]
    )
    return q, [f"{total} ÷ {k} = {each}"], each


def _change(r):
    n = r.choice(NAMES)
    one, many = r.choice(THINGS)
    count, price = r.randint(2, 6), r.randint(2, 9)
    cost = count * price
    bill = next(b for b in (10, 20, 50, 100) if b > cost)
    q = f"{n} buys {count} {many} at {price} dollars each and pays with a {bill}-dollar bill. How much change does {n} get?"
    return q, [f"{count} × {price} = {cost}", f"{bill} - {cost} = {bill - cost}"], bill - cost


def _arrive_leave(r):
    place, people = r.choice(PLACES)
    a, b = r.randint(5, 40), r.randint(2, 20)
    c = r.randint(1, a + b - 1)
    q = f"A {place} had {a} {people}. Then {b} more came and {c} left. How many {people} are there now?"
    return q, [f"{a} + {b} = {a + b}", f"{a + b} - {c} = {a + b - c}"], a + b - c


def _rate(r):
    n, per, days, extra = r.choice(NAMES), r.randint(3, 15), r.randint(2, 7), r.randint(1, 20)
    q = f"{n} reads {per} pages a day for {days} days and then {extra} more pages. How many pages does {n} read in all?"
    return q, [f"{per} × {days} = {per * days}", f"{per * days} + {extra} = {per * days + extra}"], per * days + extra


KINDS = [_add, _sub, _mul, _div, _change, _arrive_leave, _rate]


def make_rows(n: int, seed: int) -> list[dict]:
    r = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        question, steps, answer = r.choice(KINDS)(r)
        if question in seen:
            continue
        seen.add(question)
        reply = "\n".join([*steps, f"Answer: {answer}"])
        rows.append(
            {
                "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": reply}],
                "answer": str(answer),
            }
        )
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    tmp.replace(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=400)
    ap.add_argument("--seed", type=int, default=20241122)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "datasets" / "arith-steps")
    args = ap.parse_args()
    rows = make_rows(args.rows, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.out / "data.jsonl", rows)
    write_jsonl(args.out / "sample.jsonl", rows[:30])
    print(f"wrote {len(rows)} rows to {args.out / 'data.jsonl'} and 30 to {args.out / 'sample.jsonl'}")


if __name__ == "__main__":
    main()
