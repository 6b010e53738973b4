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
                "Why this matters",
                [
                    "Every office has a fire alarm system, emergency lighting and marked escape routes. They only "
                    "help if everyone knows what to do. Read this guide in your first week and walk your escape "
                    "route once with the office manager.",
                ],
            ),
            (
                "When the alarm sounds",
                [
                    "Leave the building immediately by the nearest staircase. Do not use the lifts and do not stop "
                    "to collect belongings.",
                    "Follow the instructions of the fire wardens, who wear orange vests.",
                    "Close doors behind you if you can do so without delay. Help visitors who do not know the "
                    "building, and never go back inside until a fire warden or the fire brigade says it is safe.",
                ],
            ),
            (
                "If you discover a fire",
                [
                    "Press the nearest fire alarm call point, leave the area and call 112 once you are safe. Use a "
                    "fire extinguisher only if the fire is small, you have been trained and your way out stays "
                    "clear behind you.",
                ],
            ),
            (
                "Assembly points",
                [
                    "Rotterdam: the square in front of the Maritime Museum. Leeds: the lawn at the north end of "
                    "Wellington Place. Porto: Praça da Liberdade, by the statue.",
                    "At the assembly point, report to the fire warden of your floor so that they can check that "
                    "everyone is out. Desk bookings in Desko are used as the list of who is in the building, so "
                    "please book the desk you actually use.",
                ],
            ),
            (
                "Fire wardens and drills",
                [
                    "Each office has at least one fire warden per floor. Evacuation drills are held twice a year, "
                    "in April and October, without advance notice.",
                    "Anyone who needs help to evacuate should tell the office manager, who arranges a personal "
                    "evacuation plan.",
                    "Fire wardens are volunteers who receive a half-day training course every year. If you would "
                    "like to become one, tell your office manager.",
                ],
            ),
            (
                "Keeping escape routes clear",
                [
                    "Do not block corridors, stairs or fire doors with boxes, bicycles or furniture, and never prop "
                    "fire doors open. Report a blocked route or a damaged extinguisher to the office manager the "
                    "same day.",
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
                "Quarterly view",
                [
                    "Operating cash flow is forecast at EUR 4.8 million in the first quarter, EUR 1.6 million in "
                    "the second, EUR 2.1 million in the third and EUR 5.1 million in the fourth. The first and "
                    "fourth quarters are strong because most annual subscriptions are invoiced in December and "
                    "January.",
                    "Capital expenditure of EUR 4.2 million is spread over the year, with the largest payments for "
                    "the Porto office fit-out in May and August.",
                ],
            ),
            (
                "Assumptions",
                [
                    "Revenue grows by 16% in 2026. Customer payment terms average 38 days. The Porto office "
                    "expansion is paid in the second and third quarters.",
                    "Salaries are paid monthly, and the Dutch holiday allowance is paid in May. Corporate income "
                    "tax prepayments of EUR 0.7 million are due in each quarter.",
                ],
            ),
            (
                "Scenarios",
                [
                    "In the downside scenario, with revenue growth of 10% and payment terms of 45 days, free cash "
                    "flow falls to EUR 5.6 million and the lowest cash balance to EUR 26.9 million. In the upside "
                    "scenario, with growth of 20%, free cash flow reaches EUR 11.8 million.",
                ],
            ),
            (
                "Credit facility",
                [
                    "The revolving credit facility of EUR 15 million with Rabo Maritime Bank remains undrawn "
                    "and is available until November 2027.",
                    "The facility requires net debt to stay below two times EBITDA, tested every six months. The "
                    "forecast keeps the company in a net cash position throughout 2026.",
                ],
            ),
            (
                "Minimum cash",
                [
                    "The treasury policy requires a minimum cash balance of EUR 20 million at all times. Surplus "
                    "cash above EUR 30 million may be placed in deposits of up to six months with the two "
                    "relationship banks.",
                ],
            ),
        ],
    ),
    "security/key-rotation-schedule.pdf": (
        "Key rotation schedule",
        [
            (
                "Purpose",
                [
                    "This schedule sets how often each kind of secret in production is rotated and who does it. "
                    "Rotations are automated wherever possible; manual rotations are recorded in the secrets "
                    "register with the date and the person who performed them.",
                ],
            ),
            (
                "Rotation intervals",
                [
                    "Database credentials of production services are rotated every 30 days by the secrets "
                    "operator. API signing keys of the public API are rotated every 90 days.",
                    "Service account credentials for internal tools are rotated every 180 days. Webhook signing "
                    "secrets for customers are rotated on request and at least once a year.",
                    "The root certificate authority key is kept offline in the Rotterdam safe and rotated every "
                    "five years; the next rotation is due in May 2028.",
                    "Intermediate certificate authority keys are rotated every year in November, in a ceremony "
                    "with two members of the Security team present.",
                ],
            ),
            (
                "Emergency rotation",
                [
                    "When a key may have been exposed, the Security team rotates it within four hours and "
                    "records the rotation in the security incident log.",
                    "Any engineer who suspects a secret has been exposed must report it immediately, even if the "
                    "exposure lasted only seconds.",
                ],
            ),
            (
                "Ownership",
                [
                    "The schedule is owned by the Security team and reviewed every January. The secrets operator "
                    "is run by the Platform team, which is paged through Beacon if a scheduled rotation fails.",
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
