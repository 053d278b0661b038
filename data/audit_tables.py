"""Rich tables drawn from the audit and split dicts (the same dicts that go to JSON)."""

from __future__ import annotations

from rich.table import Table

from neurocascade.data.audit import KINDS


def leak_table(audit: dict, held_out: str = "test") -> Table | None:
    """Per class: how many held-out images have an exact, near or mirrored copy in training."""
    rows = audit.get(f"{held_out}_with_copy_in_train")
    if not rows:
        return None
    table = Table(title=f"{held_out.capitalize()} images with a copy in training (as distributed)")
    table.add_column("class")
    for col in ("images", "exact", "near", "mirror", "no copy", "share copied"):
        table.add_column(col, justify="right")
    for cls, row in rows.items():
        copied = sum(row[k] for k in KINDS)
        share = f"{copied / row['images']:.0%}" if row["images"] else "-"
        style = "bold" if cls == "all" else None
        table.add_row(cls, str(row["images"]), *(str(row[k]) for k in KINDS), str(row["none"]), share, style=style)
    return table


def pairs_table(audit: dict, split: dict) -> Table:
    """Copy pairs by split pair and kind: as distributed, and after the protocol's split."""
    table = Table(title=f"Copy pairs (≤ {audit['threshold_bits']} bits) by split")
    table.add_column("when")
    table.add_column("splits")
    for kind in KINDS:
        table.add_column(kind, justify="right")
    for when, by_split in (
        ("as distributed", audit["copy_pairs_by_split"]),
        (f"after split ({split['protocol']})", split.get("copy_pairs_by_split_after", {})),
    ):
        for name, counts in by_split.items():
            table.add_row(when, name, *(str(counts[k]) for k in KINDS))
    return table


def summary_table(audit: dict, split: dict, seconds: float) -> Table:
    """Groups, conflicts, unreadable files, what the protocol dropped and the resulting split sizes."""
    table = Table(title="Audit summary", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    groups = audit["groups"]
    table.add_row("images (readable)", f"{audit['images']} ({audit['readable']})")
    table.add_row("unreadable or too small, skipped", str(len(audit["unreadable"])))
    table.add_row(
        "copy groups (with copies / largest)", f"{groups['count']} ({groups['with_copies']} / {groups['largest']})"
    )
    table.add_row("label conflicts (copies with different labels)", str(len(audit["label_conflicts"])))
    table.add_row("protocol", f"{split['protocol']}: {split['protocol_name']}")
    if "dropped_total" in split:
        kinds = split["dropped_as_copies_of_test"]
        table.add_row(
            "dropped from training (copies of test)",
            f"{split['dropped_total']} ({', '.join(f'{k} {v}' for k, v in kinds.items())})",
        )
    counts = split["counts"]
    table.add_row("train / val / test", f"{counts['train']} / {counts['val']} / {counts['test']}")
    table.add_row("time", f"{seconds:.1f} s")
    return table
