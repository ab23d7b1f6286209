"""The report of one import: every file and every box of the source accounted for.

Files: each is *stored* (a new image), *merged* (the same pixels as a file stored earlier
in this import: it becomes a copy of that image), *present* (its pixels were already in
the dataset) or *skipped* (with the reason). Boxes: each is *stored* (a new box),
*merged* (it agreed with a stored box of another copy, IoU >= 0.5) or *skipped* (with the
reason); *conflicting* boxes are stored boxes that another copy does not confirm.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field


@dataclass
class FileCounts:
    total: int = 0
    stored: int = 0
    merged: int = 0
    present: int = 0
    skipped: int = 0

    def balanced(self) -> bool:
        return self.total == self.stored + self.merged + self.present + self.skipped


@dataclass
class BoxCounts:
    total: int = 0
    stored: int = 0
    merged: int = 0
    skipped: int = 0
    conflicting: int = 0  # of the stored ones

    def balanced(self) -> bool:
        return self.total == self.stored + self.merged + self.skipped


@dataclass
class ImportReport:
    dataset: str
    source: str
    options: dict = field(default_factory=dict)
    files: FileCounts = field(default_factory=FileCounts)
    boxes: BoxCounts = field(default_factory=BoxCounts)
    images_by_status: Counter = field(default_factory=Counter)
    images_by_split: Counter = field(default_factory=Counter)
    categories: list[str] = field(default_factory=list)
    skipped_files: list[dict] = field(default_factory=list)  # {file, reason, boxes}
    skipped_boxes: Counter = field(default_factory=Counter)  # reason -> count
    present_files: list[dict] = field(default_factory=list)  # {file, image_id}
    exif_orientation: list[dict] = field(default_factory=list)  # {file, orientation}
    damaged: list[dict] = field(default_factory=list)  # {file, reason}
    decode_warnings: list[dict] = field(default_factory=list)  # {file, warnings}
    duplicate_groups: list[dict] = field(default_factory=list)
    conflicts: list[dict] = field(default_factory=list)  # {image_id, files, reason}
    leaks: list[dict] = field(default_factory=list)  # {image_id, splits: {file: split}, kept_in}
    agreement: list[dict] = field(default_factory=list)  # {image_id, box, copies, ious}
    listed_not_found: list[str] = field(default_factory=list)

    # --- recording ----------------------------------------------------------------------

    def skip_file(self, file_name: str, reason: str, boxes: int) -> None:
        self.files.skipped += 1
        self.skipped_files.append({"file": file_name, "reason": reason, "boxes": boxes})
        self.skip_boxes(boxes, f"its file was skipped: {file_name}")

    def skip_boxes(self, count: int, reason: str) -> None:
        if count:
            self.boxes.skipped += count
            self.skipped_boxes[reason] += count

    # --- output -------------------------------------------------------------------------

    def balanced(self) -> bool:
        return self.files.balanced() and self.boxes.balanced()

    def agreement_summary(self) -> dict:
        ious = [iou for entry in self.agreement for iou in entry["ious"]]
        return {
            "matched_boxes": len(ious),
            "iou_mean": round(statistics.fmean(ious), 4) if ious else None,
            "iou_median": round(statistics.median(ious), 4) if ious else None,
            "iou_min": round(min(ious), 4) if ious else None,
            "iou_max": round(max(ious), 4) if ious else None,
        }

    def as_dict(self) -> dict:
        data = asdict(self)
        data["images_by_status"] = dict(self.images_by_status)
        data["images_by_split"] = dict(self.images_by_split)
        data["skipped_boxes"] = dict(self.skipped_boxes)
        data["agreement_summary"] = self.agreement_summary()
        data["balanced"] = self.balanced()
        return data

    def summary(self) -> str:
        f, b, agreement = self.files, self.boxes, self.agreement_summary()
        lines = [
            f"dataset {self.dataset!r} from {self.source}",
            f"files: {f.total} = {f.stored} stored + {f.merged} merged as copies + "
            f"{f.present} already present + {f.skipped} skipped",
            f"boxes: {b.total} = {b.stored} stored + {b.merged} merged + {b.skipped} skipped "
            f"({b.conflicting} of the stored ones conflicting)",
            f"images: {dict(sorted(self.images_by_status.items()))} by split {dict(sorted(self.images_by_split.items()))}",
            f"duplicate groups: {len(self.duplicate_groups)}, conflicts: {len(self.conflicts)}, "
            f"split leaks: {len(self.leaks)}",
            f"EXIF orientation applied: {len(self.exif_orientation)}, damaged: {len(self.damaged)}, "
            f"decode warnings: {len(self.decode_warnings)}",
            f"agreement between copies: {agreement['matched_boxes']} matched boxes, IoU mean "
            f"{agreement['iou_mean']} (min {agreement['iou_min']}, max {agreement['iou_max']})",
            f"categories: {', '.join(self.categories)}",
        ]
        lines += [f"skipped {entry['file']}: {entry['reason']}" for entry in self.skipped_files]
        lines += [f"skipped {count} boxes: {reason}" for reason, count in self.skipped_boxes.items()
                  if not reason.startswith("its file was skipped")]
        lines += [f"conflict on image {entry['image_id']}: {entry['reason']}" for entry in self.conflicts]
        lines += [f"leak: image {entry['image_id']} {entry['splits']} kept in {entry['kept_in']}"
                  for entry in self.leaks]
        if self.listed_not_found:
            lines.append(f"{len(self.listed_not_found)} names in the split lists were not imported: "
                         + ", ".join(self.listed_not_found[:10]) + (" ..." if len(self.listed_not_found) > 10 else ""))
        if not self.balanced():
            lines.append("WARNING: the counts do not add up")
        return "\n".join(lines)
