#!/usr/bin/env python3
"""Print a short summary of a CSV file: rows, columns, types, missing values, min/max."""
import argparse
import csv
import sys


def kind(values):
    try:
        [float(v) for v in values if v != ""]
        return "number"
    except ValueError:
        return "text"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("file")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    with open(args.file, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            print("empty file")
            return 0
        rows = []
        for i, row in enumerate(reader):
            if args.limit is not None and i >= args.limit:
                break
            rows.append(row)
    print(f"rows: {len(rows)}  columns: {len(header)}")
    for index, name in enumerate(header):
        column = [row[index] if index < len(row) else "" for row in rows]
        missing = sum(1 for v in column if v == "")
        line = f"- {name}: {kind(column)}, {missing} missing"
        if kind(column) == "number" and len(column) > missing:
            numbers = [float(v) for v in column if v != ""]
            line += f", min {min(numbers):g}, max {max(numbers):g}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
