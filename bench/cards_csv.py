"""Writes a card CSV for `simrenew cards import` (header iccid,card_type,msisdn,eid).

ICCIDs are `<prefix><n, 12 digits><Luhn digit>` for n in [first, first + count).
  --ids FILE        also append every ICCID to FILE, one a line
  --mixed           alternate esim/fm (fm otherwise)
  --msisdn          give each card a +86 MSISDN
  --bad-every K     make every K-th row's check digit wrong (refused by the import)
"""
import argparse


def luhn(body: str) -> str:
    for digit in range(10):
        candidate = body + str(digit)
        total = 0
        for i, c in enumerate(reversed(candidate)):
            v = int(c)
            if i % 2:
                v = v * 2 - (9 if v * 2 > 9 else 0)
            total += v
        if total % 10 == 0:
            return candidate
    raise AssertionError("one digit makes it valid")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--ids")
    parser.add_argument("--mixed", action="store_true")
    parser.add_argument("--msisdn", action="store_true")
    parser.add_argument("--bad-every", type=int, default=0)
    args = parser.parse_args()
    ids = open(args.ids, "a") if args.ids else None
    with open(args.out, "w") as csv:
        csv.write("iccid,card_type,msisdn,eid\n")
        for n in range(args.first, args.first + args.count):
            iccid = luhn(f"{args.prefix}{n:012d}")
            if args.bad_every and n % args.bad_every == args.bad_every - 1:
                iccid = iccid[:-1] + str((int(iccid[-1]) + 1) % 10)
            elif ids:
                ids.write(iccid + "\n")
            card_type = ("fm" if n % 2 else "esim") if args.mixed else "fm"
            msisdn = f"+86138{n % 100_000_000:08d}" if args.msisdn else ""
            csv.write(f"{iccid},{card_type},{msisdn},\n")
    if ids:
        ids.close()


if __name__ == "__main__":
    main()
