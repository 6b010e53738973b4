"""Write the sample knowledge base's PDF documents (examples/acme/docs/**.pdf).

The PDFs are committed; this script is how they were made and how to change them.
It needs fpdf2 (installed with the test requirements) and writes byte-identical
files on every run.

    .venv/bin/python scripts/build_sample_pdfs.py
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from fpdf import FPDF

DOCS = Path(__file__).resolve().parent.parent / "examples" / "acme" / "docs"
FIXED_DATE = dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)

Section = tuple[str, list[str]]

PDFS: dict[str, tuple[str, list[Section]]] = {
    "all-staff/fire-safety-and-evacuation.pdf": (
        "Fire safety and evacuation",
        [
            (
                "When the alarm sounds",
                [
                    "Leave the building immediately by the nearest staircase. Do not use the lifts and do not stop "
                    "to collect belongings.",
                    "Follow the instructions of the fire wardens, who wear orange vests.",
                ],
            ),
            (
                "Assembly points",
                [
                    "Rotterdam: the square in front of the Maritime Museum. Leeds: the lawn at the north end of "
                    "Wellington Place. Porto: Praça da Liberdade, by the statue.",
                ],
            ),
            (
                "Fire wardens and drills",
                [
                    "Each office has at least one fire warden per floor. Evacuation drills are held twice a year, "
                    "in April and October, without advance notice.",
                    "Anyone who needs help to evacuate should tell the office manager, who arranges a personal "
                    "evacuation plan.",
                ],
            ),
        ],
    ),
    "finance/cash-flow-forecast-2026.pdf": (
        "Cash flow forecast 2026",
        [
            (
                "Summary",
                [
                    "The forecast prepared by Finance in January 2026 expects free cash flow of EUR 9.4 million "
                    "for 2026, before any acquisition.",
                    "Cash is expected to fall to its lowest point of EUR 31.2 million in July 2026, after the "
                    "annual insurance and licence payments.",
                ],
            ),
            (
                "Assumptions",
                [
                    "Revenue grows by 16% in 2026. Customer payment terms average 38 days. The Porto office "
                    "expansion is paid in the second and third quarters.",
                ],
            ),
            (
                "Credit facility",
                [
                    "The revolving credit facility of EUR 15 million with Rabo Maritime Bank remains undrawn "
                    "and is available until November 2027.",
                ],
            ),
        ],
    ),
    "security/key-rotation-schedule.pdf": (
        "Key rotation schedule",
        [
            (
                "Rotation intervals",
                [
                    "Database credentials of production services are rotated every 30 days by the secrets "
                    "operator. API signing keys of the public API are rotated every 90 days.",
                    "The root certificate authority key is kept offline in the Rotterdam safe and rotated every "
                    "five years; the next rotation is due in May 2028.",
                ],
            ),
            (
                "Emergency rotation",
                [
                    "When a key may have been exposed, the Security team rotates it within four hours and "
                    "records the rotation in the security incident log.",
                ],
            ),
        ],
    ),
}


def build(title: str, sections: list[Section]) -> bytes:
    """One PDF with a title and headed sections of paragraphs."""
    pdf = FPDF()
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_title(title)
    pdf.set_author("Larkspur Logistics")
    pdf.set_producer("Larkspur document service")
    pdf.add_page()
    pdf.set_font("Helvetica", style="B", size=16)
    pdf.multi_cell(0, 10, title, new_x="LMARGIN", new_y="NEXT")
    for heading, paragraphs in sections:
        pdf.ln(2)
        pdf.set_font("Helvetica", style="B", size=12)
        pdf.multi_cell(0, 8, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=11)
        for paragraph in paragraphs:
            pdf.multi_cell(0, 6, paragraph, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
    return bytes(pdf.output())


def main() -> None:
    for rel, (title, sections) in PDFS.items():
        path = DOCS / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(build(title, sections))
        print(f"wrote {path.relative_to(DOCS.parent.parent.parent)}")


if __name__ == "__main__":
    main()
