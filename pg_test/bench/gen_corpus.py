#!/usr/bin/env python3
"""Deterministic generator of a realistic multi-tenant templated-email corpus.

Used by pg_test/bench/content.sh to compare PostgreSQL TOAST compression
(pglz, lz4) against floe's content store (lz4, zstd, zstd + per-tenant
dictionary, exact-duplicate dedup) on data that looks like what an email
platform actually stores: many tenants (companies), each sending a few dozen
templates with its own branding, personalised per recipient.

Output is PostgreSQL COPY text format (tab separated, backslash escaping of
backslash, tab, newline and carriage return) with the columns

    id        bigint   1..N
    tenant    uuid     one of T tenant ids, deterministic from --seed
    template  int      template id 1..36
    body      text     the rendered email body (HTML or plain text)

so it can be loaded with  COPY t (id, tenant, template, body) FROM STDIN.

What the data looks like, and why:

* 36 templates: marketing newsletters, promos, product launches, digests,
  transactional mail (receipts, password resets, shipping notices, security
  alerts), invoices and statements, cold-outreach sequences with quoted
  follow-ups, event invitations/reminders.  Most are HTML emails in the shape
  real ESP/MJML output has (nested layout tables, inline CSS, Outlook
  conditional comments, header, footer, unsubscribe block, legal footer);
  some are plain text (a few with CRLF line endings, tab-separated invoice
  lines, and the odd backslash).
* Every tenant has its own brand: name, domain, colour palette, font, layout
  style, postal address, legal footer, senders/signatures, product catalogue,
  link-tracking scheme and a pool of marketing copy.  So the same template id
  differs between tenants but is highly similar within one tenant -- which is
  what a per-tenant compression dictionary is meant to exploit.
* Per-row personalisation: recipient name (including some non-ASCII names),
  company, per-link tracking tokens (random hex/base64 -- incompressible, as
  in real mail), order/invoice numbers, amounts, dates, sender signature.
  Templates repeat a block (articles, products, line items, digest entries,
  transactions, quoted messages...) a variable number of times, so body sizes
  range from 2 KB to 50 KB, roughly log-uniform (mean ~15 KB).
* About 20% of rows are exact byte-for-byte duplicates of an earlier row of
  the same tenant (unpersonalised broadcast campaigns sent to many
  recipients) -- the case content-addressed dedup should find.  Duplicates
  never cross tenants.  Near-duplicates (same template, different
  personalisation) occur naturally.

Only the Python standard library is used and all randomness comes from one
random.Random(seed), so the output is byte-identical for the same arguments.
A summary (rows, bytes, body size distribution, duplicate count) is printed
to stderr at the end.

Usage:
    python3 gen_corpus.py --rows 100000 --tenants 8 --seed 42 --out corpus.tsv
"""

import argparse
import base64
import bisect
import hashlib
import math
import random
import re
import string
import sys
import textwrap
import time
import uuid

MIN_BODY = 2048
MAX_BODY = 51200
DUP_P = 0.20          # share of rows that are exact duplicates of a broadcast
NEW_BROADCAST_P = 0.015  # share of rows that start a new broadcast campaign
POOL_SIZE = 8         # recent broadcast campaigns kept per tenant
SIZE_BUCKETS = 48

# --------------------------------------------------------------------------
# Word banks
# --------------------------------------------------------------------------

FIRST = (
    "James Mary Olivia Liam Emma Noah Ava Sophia Lucas Mia Ethan Isabella "
    "Mateo Amelia Harper Elijah Charlotte Benjamin Evelyn Henry Grace Daniel "
    "Hannah Jonas Lena Marco Giulia Pedro Ana Tomasz Agnieszka Yuki Hiroshi "
    "Sanjay Ravi Nadia Omar Elena Sven Camille Julien Laura Tariq Rachel "
    "David Sarah Michael Jennifer Chris Jessica Andrew Emily Kevin Megan "
    "Ryan Nicole Jason Stephanie Brian Ashley Matthew Lauren Fatima Mohammed "
    "Ingrid Wei Priya Kenji Oluwaseun Aisha Dmitri"
).split() + ["José", "Zoë", "Łukasz", "Søren", "Chloé", "François", "Björn",
             "Mónica", "Renée", "Siobhán", "Jürgen", "Inès", "Anaïs", "Çağla"]

LAST = (
    "Smith Johnson Williams Brown Jones Miller Davis Wilson Anderson Taylor "
    "Thomas Moore Martin Jackson Thompson White Harris Clark Lewis Robinson "
    "Walker Young Allen King Wright Scott Hill Green Adams Baker Nelson "
    "Carter Mitchell Roberts Turner Phillips Campbell Parker Evans Edwards "
    "Collins Stewart Morris Murphy Cook Rogers Nowak Kowalski Schmidt "
    "Fischer Weber Wagner Becker Rossi Russo Ferrari Bianchi Dubois Laurent "
    "Bernard Tanaka Suzuki Sato Kim Lee Park Chen Wang Li Zhang Singh Patel "
    "Sharma Okafor Adeyemi Hansen Larsen Johansson Lindqvist Novak O'Brien "
    "O'Connor MacLeod"
).split() + ["García", "Müller", "Fernández", "Łopatka", "Sørensen",
             "Gonçalves", "Pérez", "Åberg", "Dvořák", "Ó Briain", "Núñez"]

RCOMPANIES = (
    "Acme Logistics;Bright Horizons Dental;Cedar Point Legal;Delta Robotics;"
    "Evergreen Realty;Fjord Analytics;Globex Manufacturing;Helios Solar;"
    "Initech;Jetstream Couriers;Keystone Insurance;Lighthouse Media;"
    "Monarch Foods;Nexus Biotech;Orion Security;Pioneer Health;Quantum Retail;"
    "Riverbend Capital;Summit Outdoor;Trident Marine;Umbra Design Studio;"
    "Vertex Engineering;Wavelength Audio;Xenon Pharma;Yellowstone Ranch Supply;"
    "Zenith Hospitality;Blue Harbor Seafood;Copperline Telecom;Driftwood Hotels;"
    "Elm Street Bakery;Foxtrot Fintech;Granite State Builders;Hollow Oak Winery;"
    "Ironclad Cybersecurity;Jade Garden Restaurants;Kinetic Sports;"
    "Lumos Education;Mosaic Architecture;Northstar Aviation;Oakwood Furniture;"
    "Pinnacle Consulting;Redline Motors;Sapphire Clinics;Tundra Cold Chain;"
    "Unity Nonprofit Network;Velvet Cosmetics;Willowbrook Schools;Müller Maschinenbau;"
    "Société Générale de Café;Nordlys Energi"
).split(";")

JOB_TITLES = (
    "Head of Marketing;VP Sales;Operations Manager;CTO;Founder;"
    "Procurement Lead;Engineering Manager;Customer Success Director;"
    "Finance Controller;Office Manager;Growth Lead;Product Manager;"
    "IT Administrator;Chief of Staff;Head of People"
).split(";")

CITIES = [
    ("Portland", "OR", "97205", "United States"),
    ("Austin", "TX", "78701", "United States"),
    ("Brooklyn", "NY", "11201", "United States"),
    ("Denver", "CO", "80202", "United States"),
    ("Toronto", "ON", "M5V 2T6", "Canada"),
    ("London", "", "EC2A 4NE", "United Kingdom"),
    ("Manchester", "", "M1 1AE", "United Kingdom"),
    ("Dublin", "", "D02 X285", "Ireland"),
    ("Berlin", "", "10115", "Germany"),
    ("München", "", "80331", "Germany"),
    ("Amsterdam", "", "1017 CE", "Netherlands"),
    ("Kraków", "", "31-042", "Poland"),
    ("Lisboa", "", "1200-195", "Portugal"),
    ("Barcelona", "", "08002", "Spain"),
    ("Copenhagen", "", "1620", "Denmark"),
    ("Stockholm", "", "111 57", "Sweden"),
    ("Melbourne", "VIC", "3000", "Australia"),
    ("Singapore", "", "018956", "Singapore"),
]

STREETS = (
    "Market Street;Harbor Way;Elm Avenue;Mission Street;King Street West;"
    "Old Street;Torstraße;Keizersgracht;Rua Augusta;Carrer de Pelai;"
    "Vesterbrogade;Collins Street;Queen Street;Pearl Street;Congress Avenue"
).split(";")

DEVICES = (
    "Chrome on Windows 11;Safari on iPhone (iOS 17.4);Firefox on Ubuntu 22.04;"
    "Edge on Windows 10;Safari on macOS Sonoma;Chrome on Android 14;"
    "Mobile app on Pixel 8;Mobile app on iPad Air"
).split(";")

CARRIERS = ["UPS", "FedEx", "DHL Express", "USPS", "Royal Mail", "DPD", "PostNL", "GLS"]
TRACK_STATUSES = [
    "Label created", "Picked up", "Arrived at sort facility",
    "Departed sort facility", "In transit", "Arrived at regional hub",
    "Customs clearance completed", "Out for delivery", "Delivery attempted",
    "Held at access point", "Processed at destination facility",
]
MERCHANTS = [
    "AMZN Mktp US", "Whole Foods Market", "Uber Trip", "Spotify P1A2B3",
    "Shell Station 0421", "Netflix.com", "Apple.com/bill", "Starbucks 11873",
    "Lyft Ride", "Trader Joe's #552", "Airbnb HMQ8", "Delta Air Lines",
    "Costco Whse 0113", "Google Cloud", "AWS EMEA", "IKEA Berlin",
    "Deliveroo", "Tesco Stores 3021", "SEPA Transfer", "ATM Withdrawal",
    "Interest Payment", "Payroll Deposit", "Card Refund",
]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July",
          "August", "September", "October", "November", "December"]
SEASONS = ["spring", "summer", "autumn", "winter", "holiday season", "new year"]

PALETTES = [
    # primary, accent, bg, text, muted, border, header_bg, footer_bg, btn_text
    ("#1a73e8", "#fbbc04", "#f4f6f8", "#202124", "#5f6368", "#e3e6ea", "#ffffff", "#eceff1", "#ffffff"),
    ("#e4572e", "#29335c", "#faf7f2", "#1d1d1f", "#6e6e73", "#ece4d8", "#29335c", "#f1ebe1", "#ffffff"),
    ("#0f766e", "#f59e0b", "#f0fdfa", "#134e4a", "#52525b", "#ccfbf1", "#ffffff", "#e6f4f1", "#ffffff"),
    ("#6d28d9", "#ec4899", "#f5f3ff", "#1e1b4b", "#6b7280", "#e9e5ff", "#1e1b4b", "#ede9fe", "#ffffff"),
    ("#111111", "#c8a96a", "#ffffff", "#111111", "#777777", "#eeeeee", "#111111", "#f7f7f7", "#ffffff"),
    ("#d62828", "#003049", "#fdf0d5", "#003049", "#5c677d", "#f0e2c3", "#ffffff", "#f7ead0", "#ffffff"),
    ("#2a9d8f", "#e76f51", "#f8f9fa", "#264653", "#6c757d", "#dee2e6", "#264653", "#e9ecef", "#ffffff"),
    ("#ffb703", "#023047", "#fffdf5", "#023047", "#4a5568", "#f1e7c8", "#023047", "#fff4d6", "#023047"),
    ("#3a86ff", "#8338ec", "#f7f9ff", "#0b132b", "#5c6378", "#dfe6fb", "#ffffff", "#eef2ff", "#ffffff"),
    ("#006d77", "#e29578", "#edf6f9", "#1b263b", "#56636f", "#cde5ea", "#006d77", "#dcecef", "#ffffff"),
]
FONTS = [
    "'Helvetica Neue', Helvetica, Arial, sans-serif",
    "-apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif",
    "Georgia, 'Times New Roman', Times, serif",
    "'Inter', 'Segoe UI', Arial, sans-serif",
    "Verdana, Geneva, Tahoma, sans-serif",
    "'Lato', 'Trebuchet MS', Arial, sans-serif",
]

BRAND_PREFIX = (
    "Northwind Lumen Bluefin Copperleaf Kestrel Orbital Fernhill Atlas "
    "Meridian Pinecrest Quill Sundial Harbor Juniper Cobalt Evergreen "
    "Foxglove Granite Halcyon Ironwood Larkspur Nimbus Oakridge Paragon "
    "Redwood Saltmarsh Tidewater Vantage Willow Zephyr Alder Beacon Cascade "
    "Driftwood Ember Falcon Glacier Horizon Ivory Marigold"
).split()

INDUSTRIES = {
    "retail": {
        "suffix": ["Outfitters", "Home", "Goods", "Supply Co.", "Apparel", "Market"],
        "things": ["our new autumn collection", "the linen range", "handmade ceramics",
                   "our bestselling sneakers", "the weekender bag", "organic cotton basics",
                   "the merino capsule wardrobe", "our kitchen essentials"],
        "feats": ["free returns within 60 days", "carbon-neutral shipping", "lifetime repairs",
                  "a two-year warranty", "free shipping over $75", "gift wrapping at checkout"],
        "benefits": ["stay warm without the bulk", "make your mornings a little slower",
                     "pack lighter", "look sharp from desk to dinner",
                     "build a wardrobe that lasts", "bring calm to your home"],
        "adj": ["Classic", "Everyday", "Heritage", "Lightweight", "Organic", "Relaxed",
                "Premium", "Recycled", "Essential", "Cozy"],
        "mat": ["Cotton", "Linen", "Merino", "Leather", "Canvas", "Denim", "Cashmere",
                "Bamboo", "Stoneware", "Oak"],
        "noun": ["Crewneck Tee", "Oxford Shirt", "Chino Pant", "Weekender Bag",
                 "Throw Blanket", "Table Lamp", "Pour-Over Set", "Sneaker", "Rain Jacket",
                 "Beanie", "Duvet Cover", "Serving Bowl", "Tote", "Cardigan"],
        "price": (9, 260), "offer": "everything in store", "cur": "$",
    },
    "saas": {
        "suffix": ["Analytics", "Cloud", "Labs", "CRM", "Software", "HQ"],
        "things": ["the new reporting dashboard", "workflow automations", "our public API",
                   "role-based permissions", "the mobile app", "audit logs",
                   "the Slack integration", "custom fields"],
        "feats": ["SAML single sign-on", "real-time collaboration", "a 99.99% uptime SLA",
                  "SOC 2 Type II compliance", "unlimited guest seats", "EU data residency"],
        "benefits": ["ship faster", "cut manual work in half", "keep every team aligned",
                     "spot churn before it happens", "close the books sooner",
                     "answer questions without waiting on engineering"],
        "adj": ["Annual", "Monthly", "Team", "Business", "Enterprise", "Growth"],
        "mat": ["Plan", "Seat", "Add-on", "Workspace", "License", "Bundle"],
        "noun": ["- Core", "- Analytics", "- Storage 100 GB", "- API 1M calls",
                 "- Premium Support", "- SSO", "- Audit Log Retention", "- Data Export"],
        "price": (12, 1900), "offer": "annual plans", "cur": "$",
    },
    "travel": {
        "suffix": ["Travel", "Journeys", "Air", "Stays", "Voyages"],
        "things": ["our summer fares", "boutique hotels in Lisbon",
                   "the new direct route to Reykjavík", "weekend city breaks",
                   "the loyalty programme", "island-hopping packages",
                   "rail passes across Europe"],
        "feats": ["free cancellation", "flexible dates", "lounge access", "double points",
                  "a free checked bag", "price-drop protection"],
        "benefits": ["see more for less", "travel without the stress",
                     "make the most of your holidays", "finally take that trip",
                     "skip the queues"],
        "adj": ["Economy", "Premium", "Flex", "Saver", "Business", "Family"],
        "mat": ["Fare", "Room", "Package", "Pass", "Transfer", "Upgrade"],
        "noun": ["- Lisbon", "- Reykjavík", "- Kyoto", "- Barcelona", "- New York",
                 "- Cape Town", "- Bali", "- Marrakech", "- Oslo"],
        "price": (29, 2400), "offer": "summer getaways", "cur": "€",
    },
    "finance": {
        "suffix": ["Bank", "Capital", "Pay", "Financial", "Credit Union"],
        "things": ["the new savings account", "instant transfers", "the metal card",
                   "our budgeting tools", "round-up investing", "joint accounts",
                   "the business account"],
        "feats": ["no foreign transaction fees", "4.1% APY", "instant card freezing",
                  "24/7 fraud monitoring", "cashback on every purchase",
                  "FDIC-insured deposits"],
        "benefits": ["grow your savings", "stay on top of spending", "keep your money safe",
                     "split bills without the awkwardness", "plan for big goals"],
        "adj": ["Monthly", "Annual", "Premium", "Standard", "Business", "Foreign"],
        "mat": ["Account", "Card", "Transfer", "Advisory", "Protection", "Exchange"],
        "noun": ["Fee", "Charge", "Service", "Plan", "Interest", "Adjustment"],
        "price": (1, 480), "offer": "premium cards", "cur": "£",
    },
    "media": {
        "suffix": ["Media", "Events", "Learning", "Academy", "Press"],
        "things": ["the spring conference", "our new course library",
                   "the members-only podcast", "live workshops", "the annual report",
                   "our certification track"],
        "feats": ["on-demand recordings", "certificates of completion",
                  "small-group mentoring", "lifetime access", "downloadable slides"],
        "benefits": ["level up your skills", "meet peers in your field",
                     "stay ahead of the curve", "learn from people who've done it"],
        "adj": ["Early-Bird", "Standard", "VIP", "Student", "Team", "Virtual"],
        "mat": ["Conference", "Workshop", "Membership", "Course", "Masterclass", "Summit"],
        "noun": ["Pass", "Ticket", "Bundle", "Seat", "Access", "Subscription"],
        "price": (19, 1500), "offer": "conference passes", "cur": "€",
    },
}

SENTENCES = [
    "This {season}, {thing} is designed to help you {benefit}.",
    "We've been listening to your feedback, and {thing} now comes with {feat}.",
    "More than {n} customers already use {thing} to {benefit}.",
    "If you haven't tried {thing} yet, now is a great time to start.",
    "Our team in {city} spent the last few months rethinking {thing} from the ground up.",
    "Every order includes {feat}, no strings attached.",
    "Here's what's new at {company} and why it matters to you.",
    "We know your time is valuable, so we'll keep this short.",
    "{Thing} is available starting today for everyone.",
    "Members get early access, plus {feat}.",
    "As always, {feat} comes standard.",
    "We think you'll love how easy it is to {benefit}.",
    "Thank you for being part of the {company} community.",
    "Questions? Our support team is available around the clock.",
    "Read on for the highlights, tips from our experts, and a few things we're excited about.",
    "It's the little details that make {thing} feel effortless.",
    "We partnered with {n2} independent specialists to bring you {thing}.",
    "Customers tell us it helps them {benefit}, and we couldn't be happier.",
    "Availability is limited, so don't wait too long.",
    "Last quarter alone, {thing} helped our customers {benefit} {n2}% more often.",
    "You asked for {feat}; we listened.",
    "There's never been a better moment to {benefit}.",
    "Our {season} update brings {feat} to {thing}.",
    "Not sure where to begin? Start with {thing} and go from there.",
    "We'll be sharing more about {thing} over the coming weeks.",
    "Behind every release is a small team in {city} obsessed with the details.",
    "And yes, {feat} is included at no extra cost.",
    "Pro tip: pair {thing} with {thing2} to {benefit}.",
]
HEADLINES = [
    "Introducing {thing}", "{n2} ways to {benefit}", "Why we rebuilt {thing}",
    "How teams in {city} {benefit}", "The {season} edit: {thing}",
    "What's new: {feat}", "Behind the scenes at {company}", "A closer look at {thing}",
    "Your guide to {thing}", "{Feat}, now for everyone", "Ask the experts: {thing}",
    "Five minutes with our team in {city}", "From the blog: how to {benefit}",
    "Customer spotlight: learning to {benefit}", "Everything you need to know about {thing}",
]
TAGS = ["Product news", "How-to", "Customer story", "Company", "Event", "Tips",
        "Editor's pick", "Community", "Guides", "Release"]
CHANGELOG_TAGS = [("New", "#16a34a"), ("Improved", "#2563eb"), ("Fixed", "#dc2626"),
                  ("Deprecated", "#9333ea")]
SURVEY_QS = [
    "How likely are you to recommend us to a friend or colleague?",
    "How satisfied were you with the delivery speed?",
    "How easy was it to find what you were looking for?",
    "How would you rate the quality of your purchase?",
    "How helpful was our support team?",
    "How well does our product meet your needs?",
    "How clear was our pricing?",
    "How likely are you to buy from us again?",
]
STEP_TITLES = [
    "Complete your profile", "Invite your team", "Connect your first integration",
    "Set up notifications", "Import your data", "Explore the dashboard",
    "Download the mobile app", "Book an onboarding call", "Turn on two-factor authentication",
    "Create your first project", "Customise your workspace", "Read the getting-started guide",
]
TASKS = [
    "send over the revised proposal", "share the security questionnaire",
    "loop in the procurement team", "schedule a technical deep-dive",
    "confirm the pilot scope", "set up a sandbox account", "review the draft SOW",
    "share usage data from the last quarter", "confirm budget owner",
    "prepare a pricing comparison", "book time with legal", "send the reference list",
]


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

def cap(s):
    return s[:1].upper() + s[1:]


def slugify(s):
    return re.sub(r"[^a-z0-9]+", "", s.lower())


def money(cur, v):
    return "%s%s" % (cur, format(v, ",.2f"))


def b64tok(rng, nbytes):
    return base64.urlsafe_b64encode(rng.getrandbits(nbytes * 8).to_bytes(nbytes, "little")).rstrip(b"=").decode("ascii")


def hextok(rng, nhex):
    return "%0*x" % (nhex, rng.getrandbits(nhex * 4))


# Dates: precomputed table of 3 years of days, several formats each.
def _build_days():
    out = []
    mdays = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    dow = 0  # 2023-01-02 is Monday; we start at 2023-01-01 (Sunday -> 6)
    dow = 6
    for y in (2023, 2024, 2025):
        for m in range(12):
            nd = mdays[m] + (1 if (m == 1 and y % 4 == 0) else 0)
            for d in range(1, nd + 1):
                wd = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                      "Saturday", "Sunday"][dow]
                out.append((
                    "%s %d, %d" % (MONTHS[m], d, y),          # long
                    "%d-%02d-%02d" % (y, m + 1, d),            # iso
                    "%d %s %d" % (d, MONTHS[m][:3], y),        # short
                    wd,
                    "%s, %s %d" % (wd[:3], MONTHS[m][:3], d),  # mini
                ))
                dow = (dow + 1) % 7
    return out


DAYS = _build_days()


# --------------------------------------------------------------------------
# Tenants
# --------------------------------------------------------------------------

class Tenant:
    pass


def _fill(rng, pat, voc, company, thing=None):
    th = thing or rng.choice(voc["things"])
    th2 = rng.choice(voc["things"])
    ft = rng.choice(voc["feats"])
    return pat.format(
        season=rng.choice(SEASONS), thing=th, Thing=cap(th), thing2=th2,
        benefit=rng.choice(voc["benefits"]), feat=ft, Feat=cap(ft),
        n=format(rng.choice([1200, 4500, 12000, 25000, 80000, 150000]), ","),
        n2=rng.randint(3, 12), city=rng.choice(CITIES)[0], company=company)


def make_tenant(rng, idx, used_names):
    t = Tenant()
    t.idx = idx
    t.uuid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    ind = rng.choice(sorted(INDUSTRIES))
    voc = INDUSTRIES[ind]
    t.industry = ind
    for attempt in range(1000):
        name = "%s %s" % (rng.choice(BRAND_PREFIX), rng.choice(voc["suffix"]))
        if attempt > 50:
            name += " %d" % rng.randint(2, 999)
        if name not in used_names:
            break
    used_names.add(name)
    t.company = name
    slug = slugify(name)
    t.slug = slug
    t.domain = slug + rng.choice([".com", ".com", ".io", ".co", ".de", ".co.uk", ".eu"])
    t.cur = voc["cur"]
    pal = rng.choice(PALETTES)
    t.style = rng.choice(["mjml", "mjml", "lean", "legacy"])
    city = rng.choice(CITIES)
    street = "%d %s" % (rng.randint(1, 980), rng.choice(STREETS))
    suite = rng.choice(["", ", Suite %d" % rng.randint(100, 1900), ", Floor %d" % rng.randint(2, 30)])
    legal_form = {"United States": "Inc.", "Canada": "Ltd.", "United Kingdom": "Ltd",
                  "Ireland": "Limited", "Germany": "GmbH", "Netherlands": "B.V.",
                  "Poland": "sp. z o.o.", "Portugal": "Lda.", "Spain": "S.L.",
                  "Denmark": "ApS", "Sweden": "AB", "Australia": "Pty Ltd",
                  "Singapore": "Pte. Ltd."}[city[3]]
    t.tenant_city = city[0]
    senders = []
    for _ in range(4):
        fn, ln = rng.choice(FIRST), rng.choice(LAST)
        senders.append((
            "%s %s" % (fn, ln),
            rng.choice(["Account Executive", "Head of Growth", "Customer Success Manager",
                        "Founder & CEO", "Partnerships Lead", "Sales Development Rep",
                        "Community Manager", "Editor-in-Chief"]),
            "%s.%s@%s" % (slugify(fn) or "team", slugify(ln) or "x", t.domain),
            "+%d %d %03d %04d" % (rng.choice([1, 44, 49, 31, 353, 61]), rng.randint(20, 999),
                                   rng.randint(0, 999), rng.randint(0, 9999)),
        ))
    t.senders = senders
    # Link tracking scheme (every link in real ESP mail is rewritten).
    scheme = rng.choice(["sendgrid", "mailchimp", "mailgun", "braze"])
    t.scheme = scheme
    t.tok_bytes = rng.randint(16, 40)
    t.mc_u = hextok(rng, 25)
    t.mc_n = rng.randint(2, 21)
    t.url_n = rng.randint(1000, 99999)
    t.order_prefix = rng.choice(["", "#", "ORD-", "%s-" % slug[:3].upper(), "W"])
    # Product catalogue.
    lo, hi = voc["price"]
    prods = []
    for i in range(rng.randint(30, 90)):
        nm = "%s %s %s" % (rng.choice(voc["adj"]), rng.choice(voc["mat"]), rng.choice(voc["noun"]))
        nm = nm.replace(" - ", " – ")
        price = round(math.exp(rng.uniform(math.log(lo), math.log(hi))), 0) - rng.choice([0, 0.01, 0.05])
        price = max(price, 0.99)
        desc = _fill(rng, rng.choice(SENTENCES), voc, name)
        prods.append((nm, "%s-%05d" % (slug[:2].upper(), rng.randint(0, 99999)), price,
                      desc, "%s-%s" % (slugify(nm)[:24], hextok(rng, 6))))
    t.products = prods
    # Marketing copy pool.
    paras = []
    for i in range(rng.randint(60, 110)):
        paras.append(" ".join(_fill(rng, rng.choice(SENTENCES), voc, name)
                              for _ in range(rng.randint(2, 5))))
    t.paras = paras
    t.paras_wrapped = [textwrap.fill(p, 72) for p in paras]
    t.paras_quoted = ["\n".join("> " + l for l in textwrap.wrap(p, 70)) for p in paras]
    t.heads = [_fill(rng, rng.choice(HEADLINES), voc, name) for _ in range(rng.randint(40, 70))]
    t.heads = [cap(h) for h in t.heads]
    t.events = []
    for _ in range(3):
        c = rng.choice(CITIES)
        t.events.append(("%s %s %d" % (name.split()[0], rng.choice(
            ["Summit", "Live", "Connect", "Forum", "Days", "World Tour"]), rng.choice([2024, 2025])),
            c[0], rng.choice(["Convention Center", "Harbour Hall", "The Foundry",
                              "Kulturbrauerei", "Design Museum", "Pier 27"])))
    t.social = rng.sample(["facebook", "twitter", "instagram", "linkedin", "youtube", "tiktok"],
                          rng.randint(3, 5))
    reg = rng.randint(1000000, 99999999)
    t.static = {
        "company": name, "domain": t.domain, "slug": slug,
        "primary": pal[0], "accent": pal[1], "bg": pal[2], "text": pal[3],
        "muted": pal[4], "border": pal[5], "header_bg": pal[6], "footer_bg": pal[7],
        "btn_text": pal[8],
        "header_fg": "#ffffff" if pal[6] not in ("#ffffff",) else pal[3],
        "font": rng.choice(FONTS),
        "radius": rng.choice(["0px", "3px", "4px", "6px", "8px", "24px"]),
        "width": rng.choice(["600", "600", "640", "580"]),
        "logo": "https://cdn.%s/email/assets/logo-%s@2x.png" % (t.domain, hextok(rng, 8)),
        "logo_w": str(rng.choice([120, 140, 160, 180])),
        "addr1": street + suite, "city": city[0], "region": city[1], "postal": city[2],
        "country": city[3],
        "legal_name": "%s %s" % (name, legal_form),
        "reg_no": str(reg), "vat": "%s%09d" % (rng.choice(["DE", "GB", "NL", "IE", "US-EIN "]),
                                               rng.randint(0, 999999999)),
        "support": "support@" + t.domain, "offer": voc["offer"],
        "cur": t.cur, "year": "2024", "help": "help.%s" % t.domain,
        "tenant_city": city[0],
        "nl_name": rng.choice(["The Weekly", "Dispatch", "Field Notes", "The Briefing",
                               "Insider", "The Roundup"]),
    }
    t.crlf = rng.random() < 0.4
    t.icon_style = rng.choice(["gray", "color", "white", "circle-dark"])
    return t


# --------------------------------------------------------------------------
# Dynamic field generators (row level).  Fields are produced lazily: a Ctx
# is a dict whose __missing__ calls the generator for the field name, so a
# template only pays for the fields it actually uses.
# --------------------------------------------------------------------------

class Ctx(dict):
    __slots__ = ("rng", "t", "bc", "html", "gens", "parent")

    def __missing__(self, k):
        g = self.gens.get(k)
        if g is None:
            v = self.parent[k]
        else:
            v = g(self)
        self[k] = v
        return v


def _link(c, path=""):
    """A tracked link in the tenant's ESP scheme; fresh token each call."""
    t, rng = c.t, c.rng
    amp = "&amp;" if c.html else "&"
    s = t.scheme
    if s == "sendgrid":
        return "https://url%d.%s/ls/click?upn=u001.%s" % (t.url_n, t.domain, b64tok(rng, t.tok_bytes * 2))
    if s == "mailchimp":
        return "https://%s.us%d.list-manage.com/track/click?u=%s%sid=%s%se=%s" % (
            t.slug, t.mc_n, t.mc_u, amp, hextok(rng, 10), amp, c["e"])
    if s == "mailgun":
        return "https://email.%s/c/%s" % (t.domain, b64tok(rng, t.tok_bytes * 3))
    return "https://links.%s/a/click?_t=%s%s_m=%s%s_e=%s" % (
        t.domain, hextok(rng, 32), amp, c["m"], amp, b64tok(rng, t.tok_bytes))


def _name(c):
    if c.bc:
        return None
    return (c.rng.choice(FIRST), c.rng.choice(LAST))


def _g_first(c):
    n = c["_n"]
    return n[0] if n else "there"


def _g_last(c):
    n = c["_n"]
    return n[1] if n else ""


def _g_full(c):
    n = c["_n"]
    return "%s %s" % n if n else "Valued Customer"


def _g_email(c):
    n = c["_n"]
    if not n:
        return "you"
    rng = c.rng
    f = slugify(n[0]) or "user"
    l = slugify(n[1]) or "x"
    pat = rng.randrange(4)
    local = (f + "." + l, f[0] + l, f + l[:1] + str(rng.randint(1, 99)), f)[pat]
    dom = rng.choice(["gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me",
                      slugify(c["rcompany"])[:18] + ".com", "web.de", "hotmail.co.uk"])
    return local + "@" + dom


def _g_greet(c):
    n = c["_n"]
    return n[0] if n else c.rng.choice(["there", "friend", "everyone"])


def _amount(c):
    lo, hi = INDUSTRIES[c.t.industry]["price"]
    return round(math.exp(c.rng.uniform(math.log(lo * 2), math.log(hi * 3))), 2)


def _sender(c):
    return c.t.senders[c.rng.randrange(len(c.t.senders))]


def _g_sum(c):
    return [0.0]


def _g_bal(c):
    v = round(c.rng.uniform(200, 25000), 2)
    c["open_bal"] = money(c.t.cur, v)
    return [v]


def _subtotal(c):
    return c["_sum"][0]


ROW_GENS = {
    "_n": _name,
    "first": _g_first, "last": _g_last, "full": _g_full, "email": _g_email,
    "greet": _g_greet,
    "rcompany": lambda c: c.rng.choice(RCOMPANIES),
    "rtitle": lambda c: c.rng.choice(JOB_TITLES),
    "_day": lambda c: c.rng.randrange(len(DAYS) - 60),
    "date": lambda c: DAYS[c["_day"]][0],
    "date_iso": lambda c: DAYS[c["_day"]][1],
    "date_short": lambda c: DAYS[c["_day"]][2],
    "weekday": lambda c: DAYS[c["_day"] + 7][3],
    "due_date": lambda c: DAYS[c["_day"] + 30][0],
    "eta_date": lambda c: DAYS[c["_day"] + c.rng.randint(2, 6)][4],
    "event_date": lambda c: DAYS[c["_day"] + c.rng.randint(14, 50)][0],
    "time": lambda c: "%02d:%02d" % (c.rng.randint(0, 23), c.rng.randrange(60)),
    "order_no": lambda c: "%s%d" % (c.t.order_prefix, c.rng.randint(1000000, 9999999)),
    "invoice_no": lambda c: "INV-%s-%06d" % (DAYS[c["_day"]][1][:4], c.rng.randint(1, 999999)),
    "acct": lambda c: "•••• %04d" % c.rng.randrange(10000),
    "last4": lambda c: "%04d" % c.rng.randrange(10000),
    "card": lambda c: c.rng.choice(["Visa", "Mastercard", "American Express", "Maestro"]),
    "code": lambda c: "%06d" % c.rng.randrange(1000000),
    "ip": lambda c: "%d.%d.%d.%d" % (c.rng.randint(11, 223), c.rng.randrange(256),
                                     c.rng.randrange(256), c.rng.randint(1, 254)),
    "device": lambda c: c.rng.choice(DEVICES),
    "loc": lambda c: "%s, %s" % c.rng.choice(CITIES)[::3],
    "tracking_no": lambda c: "1Z%s" % hextok(c.rng, 16).upper(),
    "carrier": lambda c: c.rng.choice(CARRIERS),
    "_s": _sender,
    "sender": lambda c: c["_s"][0],
    "sender_title": lambda c: c["_s"][1],
    "sender_email": lambda c: c["_s"][2],
    "sender_phone": lambda c: c["_s"][3],
    "e": lambda c: hextok(c.rng, 10),
    "m": lambda c: hextok(c.rng, 24),
    "rid": lambda c: hextok(c.rng, 24),
    "msgid": lambda c: "%s.%s" % (hextok(c.rng, 16), b64tok(c.rng, 9)),
    "amount": lambda c: money(c.t.cur, _amount(c)),
    "pct": lambda c: str(c.rng.choice([10, 15, 20, 25, 30, 40, 50])),
    "promo": lambda c: "%s%d" % (c.rng.choice(["SAVE", "HELLO", "VIP", "EARLY", "THANKS"]),
                                 c.rng.choice([10, 15, 20, 25, 30])),
    "plan": lambda c: c.rng.choice(c.t.products)[0],
    "_ev": lambda c: c.rng.choice(c.t.events),
    "event": lambda c: c["_ev"][0],
    "event_city": lambda c: c["_ev"][1],
    "event_venue": lambda c: c["_ev"][2],
    "para1": lambda c: c.rng.choice(c.t.paras),
    "para2": lambda c: c.rng.choice(c.t.paras),
    "tpara1": lambda c: c.rng.choice(c.t.paras_wrapped),
    "tpara2": lambda c: c.rng.choice(c.t.paras_wrapped),
    "headline": lambda c: c.rng.choice(c.t.heads),
    "_sum": _g_sum,
    "subtotal": lambda c: money(c.t.cur, _subtotal(c)),
    "shipping": lambda c: money(c.t.cur, 0.0 if _subtotal(c) > 75 else 6.95),
    "tax": lambda c: money(c.t.cur, round(_subtotal(c) * 0.08, 2)),
    "total": lambda c: money(c.t.cur, round(_subtotal(c) * 1.08 + (0 if _subtotal(c) > 75 else 6.95), 2)),
    "_bal": _g_bal,
    "open_bal": lambda c: (c["_bal"], c["open_bal"])[1],
    "close_bal": lambda c: money(c.t.cur, c["_bal"][0]),
    "px": lambda c: "https://%s/o/%s" % (
        {"sendgrid": "u%d.ct.sendgrid.net" % c.t.url_n, "mailchimp": "%s.us%d.list-manage.com" % (c.t.slug, c.t.mc_n),
         "mailgun": "email." + c.t.domain, "braze": "links." + c.t.domain}[c.t.scheme],
        b64tok(c.rng, c.t.tok_bytes * 2)),
    "lreset": lambda c: "https://app.%s/reset-password?token=%s&amp;uid=%s" % (
        c.t.domain, b64tok(c.rng, 48), c["rid"]) if c.html else
        "https://app.%s/reset-password?token=%s&uid=%s" % (c.t.domain, b64tok(c.rng, 48), c["rid"]),
    "lverify": lambda c: "https://app.%s/verify/%s" % (c.t.domain, b64tok(c.rng, 32)),
}
# Tracked links: each name is a distinct link with its own token.
for _k in ("lv", "lu", "lp", "lc", "lc2", "lc3", "ln1", "ln2", "ln3", "ln4",
           "ls1", "ls2", "ls3", "ls4", "ls5", "lpriv", "lhelp", "lcal"):
    ROW_GENS[_k] = _link


# --------------------------------------------------------------------------
# Repeated blocks: (html format, text format, generators)
# --------------------------------------------------------------------------

def _b_prod(c):
    return c.t.products[c.rng.randrange(len(c.t.products))]


def _b_line_total(c):
    p = c["_p"]
    q = c["qty_n"]
    tot = round(p[2] * q, 2)
    c.parent["_sum"][0] += tot
    return money(c.t.cur, tot)


def _b_txn_amt(c):
    v = round(c.rng.uniform(-350, 120) if c.rng.random() < 0.9 else c.rng.uniform(500, 4000), 2)
    c.parent["_bal"][0] += v
    c["_bal_after"] = money(c.t.cur, c.parent["_bal"][0])
    return ("-" if v < 0 else "+") + money(c.t.cur, abs(v))


def _b_author(c):
    return "%s %s" % (c.rng.choice(FIRST), c.rng.choice(LAST))


def _b_short(c):
    p = c.rng.choice(c.t.paras)
    return p[:c.rng.randint(80, 180)].rsplit(" ", 1)[0] + "…"


BLOCK_GENS = {
    "_p": _b_prod,
    "pname": lambda c: c["_p"][0],
    "psku": lambda c: c["_p"][1],
    "pprice": lambda c: money(c.t.cur, c["_p"][2]),
    "pold": lambda c: money(c.t.cur, round(c["_p"][2] * c.rng.choice([1.15, 1.25, 1.4, 1.5]), 2)),
    "pdesc": lambda c: c["_p"][3],
    "pimg": lambda c: c["_p"][4],
    "qty_n": lambda c: c.rng.choice([1, 1, 1, 1, 2, 2, 3, 4, 10]),
    "qty": lambda c: str(c["qty_n"]),
    "ltotal": _b_line_total,
    "l1": _link, "l2": _link, "l3": _link, "l4": _link, "l5": _link,
    "head": lambda c: c.rng.choice(c.t.heads),
    "para": lambda c: c.rng.choice(c.t.paras),
    "tpara": lambda c: c.rng.choice(c.t.paras_wrapped),
    "qpara": lambda c: c.rng.choice(c.t.paras_quoted),
    "short": _b_short,
    "tag": lambda c: c.rng.choice(TAGS),
    "img": lambda c: "%s-%s" % (c.rng.choice(["hero", "story", "feature", "blog", "promo"]), hextok(c.rng, 12)),
    "author": _b_author,
    "ago": lambda c: c.rng.choice(["2h ago", "5h ago", "yesterday", "2 days ago", "3 days ago", "last week"]),
    "replies": lambda c: str(c.rng.randint(0, 148)),
    "bday": lambda c: DAYS[c.parent["_day"] + c["i"] // 3][4] if c.parent["_day"] + c["i"] // 3 < len(DAYS) else DAYS[-1][4],
    "bdate": lambda c: DAYS[min(len(DAYS) - 1, c.parent["_day"] + c["i"] // 4)][2],
    "btime": lambda c: "%02d:%02d" % (c.rng.randint(6, 22), c.rng.randrange(60)),
    "slot": lambda c: "%02d:%02d" % (9 + (c["i"] - 1) * 40 // 60 % 10, (c["i"] - 1) * 40 % 60),
    "bloc": lambda c: "%s, %s" % c.rng.choice(CITIES)[::3],
    "status": lambda c: TRACK_STATUSES[(c["i"] - 1) % len(TRACK_STATUSES)],
    "bdevice": lambda c: c.rng.choice(DEVICES),
    "bip": lambda c: "%d.%d.%d.%d" % (c.rng.randint(11, 223), c.rng.randrange(256),
                                      c.rng.randrange(256), c.rng.randint(1, 254)),
    "cl_tag": lambda c: c["_cl"][0], "cl_col": lambda c: c["_cl"][1],
    "_cl": lambda c: c.rng.choice(CHANGELOG_TAGS),
    "sentence": lambda c: c.rng.choice(c.t.paras).split(". ")[0].rstrip(".") + ".",
    "step": lambda c: STEP_TITLES[(c["i"] - 1) % len(STEP_TITLES)],
    "bio_title": lambda c: "%s, %s" % (c.rng.choice(JOB_TITLES), c.rng.choice(RCOMPANIES)),
    "merchant": lambda c: c.rng.choice(MERCHANTS),
    "ref": lambda c: hextok(c.rng, 12).upper(),
    "tamt": _b_txn_amt,
    "bal_after": lambda c: (c["tamt"], c["_bal_after"])[1],
    "binv": lambda c: "INV-%d-%06d" % (2024, c.rng.randint(1, 999999)),
    "bamt": lambda c: money(c.t.cur, _amount(c)),
    "question": lambda c: SURVEY_QS[(c["i"] - 1) % len(SURVEY_QS)],
    "task": lambda c: c.rng.choice(TASKS),
    "owner": lambda c: c.rng.choice([c.parent["first"], c.parent["sender"].split()[0]]),
    "underline": lambda c: "-" * len(c["head"]),
}


BLOCKS = {}

BLOCKS["article"] = ("""
<tr>
  <td class="article" style="padding:24px 32px;border-bottom:1px solid [[border]];background:#ffffff;">
    <table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0">
      <tr>
        <td class="stack" width="180" valign="top" style="padding:0 20px 0 0;">
          <a href="[[l1]]" target="_blank"><img src="https://cdn.[[domain]]/newsletter/[[img]].jpg" width="180" height="120" alt="[[head]]" style="display:block;border:0;outline:none;border-radius:[[radius]];width:180px;max-width:100%;height:auto;"></a>
        </td>
        <td class="stack" valign="top" style="font-family:[[font]];">
          <p style="margin:0 0 6px 0;font-size:12px;line-height:16px;letter-spacing:1px;text-transform:uppercase;color:[[accent]];font-weight:bold;">[[tag]]</p>
          <h2 style="margin:0 0 10px 0;font-size:20px;line-height:26px;font-weight:bold;color:[[text]];"><a href="[[l2]]" target="_blank" style="color:[[text]];text-decoration:none;">[[head]]</a></h2>
          <p style="margin:0 0 12px 0;font-size:15px;line-height:23px;color:[[muted]];">[[para]]</p>
          <a href="[[l3]]" target="_blank" style="font-size:15px;line-height:20px;color:[[primary]];font-weight:bold;text-decoration:none;">Read more&nbsp;&rarr;</a>
        </td>
      </tr>
    </table>
  </td>
</tr>""", """
[[head]]
[[underline]]
[[tpara]]

Read more: [[l1]]
""")

BLOCKS["product"] = ("""
<tr>
  <td style="padding:16px 32px;background:#ffffff;">
    <!--[if mso]><table role="presentation" width="100%" cellpadding="0" cellspacing="0"><tr><td width="240" valign="top"><![endif]-->
    <table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="border:1px solid [[border]];border-radius:[[radius]];">
      <tr>
        <td width="200" valign="top" style="padding:12px;">
          <a href="[[l1]]" target="_blank"><img src="https://cdn.[[domain]]/products/[[pimg]]/600x600.jpg" width="176" alt="[[pname]]" style="display:block;width:176px;height:auto;border:0;border-radius:[[radius]];"></a>
        </td>
        <td valign="top" style="padding:16px 16px 16px 4px;font-family:[[font]];">
          <p style="margin:0 0 4px 0;font-size:17px;line-height:22px;font-weight:bold;color:[[text]];">[[pname]]</p>
          <p style="margin:0 0 8px 0;font-size:13px;line-height:18px;color:[[muted]];">SKU [[psku]]</p>
          <p style="margin:0 0 12px 0;font-size:14px;line-height:21px;color:[[muted]];">[[pdesc]]</p>
          <p style="margin:0 0 14px 0;font-size:18px;line-height:22px;color:[[text]];"><strong>[[pprice]]</strong>&nbsp;<span style="text-decoration:line-through;color:[[muted]];font-size:14px;">[[pold]]</span></p>
          <table role="presentation" cellpadding="0" cellspacing="0" border="0"><tr><td bgcolor="[[primary]]" style="border-radius:[[radius]];"><a href="[[l2]]" target="_blank" style="display:inline-block;padding:10px 22px;font-family:[[font]];font-size:14px;font-weight:bold;color:[[btn_text]];text-decoration:none;border-radius:[[radius]];">Shop now</a></td></tr></table>
        </td>
      </tr>
    </table>
    <!--[if mso]></td></tr></table><![endif]-->
  </td>
</tr>""", """
* [[pname]] ([[psku]]) - [[pprice]] (was [[pold]])
  [[pdesc]]
  Shop now: [[l1]]
""")

BLOCKS["line"] = ("""
            <tr>
              <td style="padding:12px 8px 12px 0;border-bottom:1px solid [[border]];font-family:[[font]];font-size:14px;line-height:20px;color:[[text]];">
                <table role="presentation" cellpadding="0" cellspacing="0" border="0"><tr>
                  <td width="56" valign="top" style="padding-right:12px;"><img src="https://cdn.[[domain]]/products/[[pimg]]/120x120.jpg" width="48" height="48" alt="" style="display:block;border:0;border-radius:4px;"></td>
                  <td valign="top"><strong>[[pname]]</strong><br><span style="color:[[muted]];font-size:12px;">SKU [[psku]]</span></td>
                </tr></table>
              </td>
              <td align="center" style="padding:12px 8px;border-bottom:1px solid [[border]];font-family:[[font]];font-size:14px;color:[[text]];">[[qty]]</td>
              <td align="right" style="padding:12px 8px;border-bottom:1px solid [[border]];font-family:[[font]];font-size:14px;color:[[muted]];">[[pprice]]</td>
              <td align="right" style="padding:12px 0 12px 8px;border-bottom:1px solid [[border]];font-family:[[font]];font-size:14px;font-weight:bold;color:[[text]];">[[ltotal]]</td>
            </tr>""", "[[pname]]\t[[psku]]\t[[qty]]\t[[pprice]]\t[[ltotal]]\n")

BLOCKS["digest"] = ("""
<tr>
  <td style="padding:18px 32px;border-bottom:1px solid [[border]];background:#ffffff;font-family:[[font]];">
    <table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0"><tr>
      <td width="44" valign="top"><img src="https://cdn.[[domain]]/avatars/[[img]].png" width="36" height="36" alt="[[author]]" style="display:block;border-radius:18px;border:0;"></td>
      <td valign="top">
        <p style="margin:0 0 2px 0;font-size:13px;line-height:18px;color:[[muted]];"><strong style="color:[[text]];">[[author]]</strong> posted in <a href="[[l1]]" style="color:[[primary]];text-decoration:none;">#[[tag]]</a> &middot; [[ago]]</p>
        <p style="margin:0 0 6px 0;font-size:16px;line-height:22px;font-weight:bold;"><a href="[[l2]]" style="color:[[text]];text-decoration:none;">[[head]]</a></p>
        <p style="margin:0 0 8px 0;font-size:14px;line-height:20px;color:[[muted]];">[[short]]</p>
        <p style="margin:0;font-size:13px;line-height:18px;"><a href="[[l3]]" style="color:[[primary]];text-decoration:none;">[[replies]] replies</a> &nbsp;&middot;&nbsp; <a href="[[l4]]" style="color:[[muted]];text-decoration:none;">Mute thread</a></p>
      </td>
    </tr></table>
  </td>
</tr>""", """
- [[head]]
  by [[author]] in #[[tag]], [[ago]] ([[replies]] replies)
  [[short]]
  [[l1]]
""")

BLOCKS["track"] = ("""
            <tr>
              <td width="110" valign="top" style="padding:10px 12px 10px 0;border-left:3px solid [[primary]];padding-left:12px;font-family:[[font]];font-size:13px;line-height:18px;color:[[muted]];">[[bday]]<br>[[btime]]</td>
              <td valign="top" style="padding:10px 0;font-family:[[font]];font-size:14px;line-height:20px;color:[[text]];"><strong>[[status]]</strong><br><span style="color:[[muted]];">[[bloc]]</span></td>
            </tr>""", "  [[bday]] [[btime]]  [[status]] - [[bloc]]\n")

BLOCKS["activity"] = ("""
            <tr>
              <td style="padding:8px 8px 8px 0;border-bottom:1px solid [[border]];font-family:[[font]];font-size:13px;color:[[text]];">[[bdate]] [[btime]] UTC</td>
              <td style="padding:8px;border-bottom:1px solid [[border]];font-family:[[font]];font-size:13px;color:[[text]];">[[bdevice]]</td>
              <td style="padding:8px;border-bottom:1px solid [[border]];font-family:monospace;font-size:13px;color:[[muted]];">[[bip]]</td>
              <td style="padding:8px 0 8px 8px;border-bottom:1px solid [[border]];font-family:[[font]];font-size:13px;color:[[muted]];">[[bloc]]</td>
            </tr>""", "  [[bdate]] [[btime]] UTC   [[bdevice]]   [[bip]]   [[bloc]]\n")

BLOCKS["agenda"] = ("""
<tr>
  <td style="padding:14px 32px;background:#ffffff;border-bottom:1px dashed [[border]];font-family:[[font]];">
    <table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0"><tr>
      <td width="70" valign="top" style="font-size:15px;line-height:22px;font-weight:bold;color:[[primary]];">[[slot]]</td>
      <td valign="top">
        <p style="margin:0 0 4px 0;font-size:16px;line-height:22px;font-weight:bold;color:[[text]];">[[head]]</p>
        <p style="margin:0 0 6px 0;font-size:13px;line-height:18px;color:[[muted]];">[[author]] &mdash; [[bio_title]]</p>
        <p style="margin:0;font-size:14px;line-height:21px;color:[[muted]];">[[short]] <a href="[[l1]]" style="color:[[primary]];">Add to my agenda</a></p>
      </td>
    </tr></table>
  </td>
</tr>""", """
[[slot]]  [[head]]
       [[author]] - [[bio_title]]
""")

BLOCKS["changelog"] = ("""
<tr>
  <td style="padding:12px 32px;background:#ffffff;font-family:[[font]];font-size:15px;line-height:22px;color:[[text]];">
    <span style="display:inline-block;padding:2px 8px;margin-right:8px;border-radius:10px;background:[[cl_col]];color:#ffffff;font-size:11px;font-weight:bold;text-transform:uppercase;letter-spacing:.5px;">[[cl_tag]]</span>[[sentence]] <a href="[[l1]]" style="color:[[primary]];text-decoration:underline;">Learn more</a>
  </td>
</tr>""", "  [[cl_tag]]: [[sentence]]\n")

BLOCKS["step"] = ("""
<tr>
  <td style="padding:16px 32px;background:#ffffff;font-family:[[font]];">
    <table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0"><tr>
      <td width="48" valign="top"><div style="width:32px;height:32px;line-height:32px;border-radius:16px;background:[[primary]];color:[[btn_text]];text-align:center;font-weight:bold;font-size:15px;">[[i]]</div></td>
      <td valign="top">
        <p style="margin:0 0 4px 0;font-size:16px;line-height:22px;font-weight:bold;color:[[text]];">[[step]]</p>
        <p style="margin:0 0 6px 0;font-size:14px;line-height:21px;color:[[muted]];">[[short]]</p>
        <a href="[[l1]]" style="font-size:14px;color:[[primary]];font-weight:bold;text-decoration:none;">Get started &rsaquo;</a>
      </td>
    </tr></table>
  </td>
</tr>""", """
[[i]]. [[step]]
   [[short]]
   [[l1]]
""")

BLOCKS["speaker"] = ("""
<tr>
  <td style="padding:18px 32px;background:#ffffff;font-family:[[font]];">
    <table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0"><tr>
      <td width="96" valign="top"><img src="https://cdn.[[domain]]/speakers/[[img]].jpg" width="80" height="80" alt="[[author]]" style="display:block;border-radius:40px;border:0;"></td>
      <td valign="top">
        <p style="margin:0;font-size:17px;line-height:22px;font-weight:bold;color:[[text]];">[[author]]</p>
        <p style="margin:0 0 8px 0;font-size:13px;line-height:18px;color:[[accent]];">[[bio_title]]</p>
        <p style="margin:0;font-size:14px;line-height:21px;color:[[muted]];">[[para]]</p>
      </td>
    </tr></table>
  </td>
</tr>""", """
[[author]], [[bio_title]]
[[tpara]]
""")

BLOCKS["txn"] = ("""
            <tr>
              <td style="padding:7px 8px 7px 0;border-bottom:1px solid [[border]];font-family:[[font]];font-size:13px;color:[[muted]];white-space:nowrap;">[[bdate]]</td>
              <td style="padding:7px 8px;border-bottom:1px solid [[border]];font-family:[[font]];font-size:13px;color:[[text]];">[[merchant]]<br><span style="font-size:11px;color:[[muted]];">Ref [[ref]]</span></td>
              <td align="right" style="padding:7px 8px;border-bottom:1px solid [[border]];font-family:[[font]];font-size:13px;color:[[text]];white-space:nowrap;">[[tamt]]</td>
              <td align="right" style="padding:7px 0 7px 8px;border-bottom:1px solid [[border]];font-family:[[font]];font-size:13px;color:[[muted]];white-space:nowrap;">[[bal_after]]</td>
            </tr>""", "[[bdate]]\t[[merchant]]\t[[ref]]\t[[tamt]]\t[[bal_after]]\n")

BLOCKS["invref"] = ("""
            <tr>
              <td style="padding:10px 8px 10px 0;border-bottom:1px solid [[border]];font-family:[[font]];font-size:14px;color:[[text]];"><a href="[[l1]]" style="color:[[primary]];text-decoration:none;font-weight:bold;">[[binv]]</a></td>
              <td style="padding:10px 8px;border-bottom:1px solid [[border]];font-family:[[font]];font-size:14px;color:[[muted]];">[[bdate]]</td>
              <td align="right" style="padding:10px 0 10px 8px;border-bottom:1px solid [[border]];font-family:[[font]];font-size:14px;color:[[text]];">[[bamt]]</td>
            </tr>""", "  [[binv]]   issued [[bdate]]   [[bamt]]   [[l1]]\n")

BLOCKS["question"] = ("""
<tr>
  <td style="padding:18px 32px;background:#ffffff;font-family:[[font]];">
    <p style="margin:0 0 10px 0;font-size:15px;line-height:22px;font-weight:bold;color:[[text]];">[[i]]. [[question]]</p>
    <table role="presentation" cellpadding="0" cellspacing="0" border="0"><tr>
      <td style="padding:0 6px 0 0;"><a href="[[l1]]" style="display:inline-block;width:40px;height:40px;line-height:40px;text-align:center;border:1px solid [[border]];border-radius:[[radius]];color:[[text]];text-decoration:none;font-weight:bold;">1</a></td>
      <td style="padding:0 6px;"><a href="[[l2]]" style="display:inline-block;width:40px;height:40px;line-height:40px;text-align:center;border:1px solid [[border]];border-radius:[[radius]];color:[[text]];text-decoration:none;font-weight:bold;">2</a></td>
      <td style="padding:0 6px;"><a href="[[l3]]" style="display:inline-block;width:40px;height:40px;line-height:40px;text-align:center;border:1px solid [[border]];border-radius:[[radius]];color:[[text]];text-decoration:none;font-weight:bold;">3</a></td>
      <td style="padding:0 6px;"><a href="[[l4]]" style="display:inline-block;width:40px;height:40px;line-height:40px;text-align:center;border:1px solid [[border]];border-radius:[[radius]];color:[[text]];text-decoration:none;font-weight:bold;">4</a></td>
      <td style="padding:0 0 0 6px;"><a href="[[l5]]" style="display:inline-block;width:40px;height:40px;line-height:40px;text-align:center;border:1px solid [[border]];border-radius:[[radius]];color:[[text]];text-decoration:none;font-weight:bold;">5</a></td>
    </tr></table>
    <p style="margin:6px 0 0 0;font-size:12px;color:[[muted]];">1 = not at all &nbsp;&middot;&nbsp; 5 = extremely</p>
  </td>
</tr>""", """
[[i]]. [[question]]
   1 [[l1]]
   5 [[l2]]
""")

BLOCKS["feature"] = ("""
<tr>
  <td style="padding:20px 32px;background:#ffffff;font-family:[[font]];">
    <img src="https://cdn.[[domain]]/icons/[[img]].png" width="40" height="40" alt="" style="display:block;border:0;margin:0 0 10px 0;">
    <h3 style="margin:0 0 8px 0;font-size:18px;line-height:24px;color:[[text]];">[[head]]</h3>
    <p style="margin:0 0 10px 0;font-size:15px;line-height:23px;color:[[muted]];">[[para]]</p>
    <a href="[[l1]]" style="font-size:14px;color:[[primary]];font-weight:bold;text-decoration:none;">See how it works &rarr;</a>
  </td>
</tr>""", """
## [[head]]

[[tpara]]
-> [[l1]]
""")

BLOCKS["quoted"] = (None, """
On [[bday]] at [[btime]], [[sender]] <[[sender_email]]> wrote:
> Hi [[first]],
>
[[qpara]]
>
[[qpara2]]
>
> [[sender]]
""")
BLOCK_GENS["qpara2"] = lambda c: c.rng.choice(c.t.paras_quoted)

BLOCKS["reslink"] = ("""<li style="margin-bottom:6px"><a href="[[l1]]" target="_blank">[[head]]</a> &ndash; [[short]]</li>
""", None)

BLOCKS["quoted_html"] = ("""<div class="gmail_quote"><div dir="ltr" class="gmail_attr">On [[bday]] at [[btime]] [[sender]] &lt;<a href="mailto:[[sender_email]]">[[sender_email]]</a>&gt; wrote:<br></div><blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204);padding-left:1ex"><div dir="ltr"><div style="font-family:arial,sans-serif;font-size:small;color:#222222">Hi [[first]],</div><div style="font-family:arial,sans-serif;font-size:small;color:#222222"><br></div><div style="font-family:arial,sans-serif;font-size:small;color:#222222">[[para]]</div><div style="font-family:arial,sans-serif;font-size:small;color:#222222"><br></div><div style="font-family:arial,sans-serif;font-size:small;color:#222222">[[para2]]</div><div style="font-family:arial,sans-serif;font-size:small;color:#222222"><br></div><div style="font-family:arial,sans-serif;font-size:small;color:#222222">Best,<br>[[sender]]</div></div></blockquote></div>
""", None)
BLOCK_GENS["para2"] = lambda c: c.rng.choice(c.t.paras)

BLOCKS["bullet"] = (None, "  - [[head]]\n    [[sentence]]\n")

BLOCKS["action"] = (None, "  [[i]]. [[owner]]: [[task]] (by [[bday]])\n     [[sentence]]\n")

BLOCKS["textsec"] = (None, """
[[head]]
[[underline]]

[[tpara]]

[[tpara2]]

Continue reading: [[l1]]
""")
BLOCK_GENS["tpara2"] = lambda c: c.rng.choice(c.t.paras_wrapped)


# --------------------------------------------------------------------------
# HTML shells (per tenant layout style)
# --------------------------------------------------------------------------

HEAD_MJML = """<!doctype html>
<html lang="en" xmlns="http://www.w3.org/1999/xhtml" xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office">
<head>
<title>[[subj]]</title>
<!--[if !mso]><!-->
<meta http-equiv="X-UA-Compatible" content="IE=edge">
<!--<![endif]-->
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="x-apple-disable-message-reformatting">
<style type="text/css">
#outlook a { padding:0; }
body { margin:0;padding:0;-webkit-text-size-adjust:100%;-ms-text-size-adjust:100%; }
table, td { border-collapse:collapse;mso-table-lspace:0pt;mso-table-rspace:0pt; }
img { border:0;height:auto;line-height:100%; outline:none;text-decoration:none;-ms-interpolation-mode:bicubic; }
p { display:block;margin:13px 0; }
a[x-apple-data-detectors] { color:inherit !important;text-decoration:none !important;font-size:inherit !important;font-family:inherit !important;font-weight:inherit !important;line-height:inherit !important; }
u + #body a { color:inherit;text-decoration:none;font-size:inherit;font-family:inherit;font-weight:inherit;line-height:inherit; }
</style>
<!--[if mso]>
<noscript>
<xml>
<o:OfficeDocumentSettings>
  <o:AllowPNG/>
  <o:PixelsPerInch>96</o:PixelsPerInch>
</o:OfficeDocumentSettings>
</xml>
</noscript>
<![endif]-->
<!--[if lte mso 11]>
<style type="text/css">
.mj-outlook-group-fix { width:100% !important; }
</style>
<![endif]-->
<style type="text/css">
@media only screen and (min-width:480px) {
  .mj-column-per-100 { width:100% !important; max-width:100%; }
  .mj-column-per-50 { width:50% !important; max-width:50%; }
  .mj-column-per-33-333333333333336 { width:33.333333333333336% !important; max-width:33.333333333333336%; }
}
@media only screen and (max-width:480px) {
  table.mj-full-width-mobile { width:100% !important; }
  td.mj-full-width-mobile { width:auto !important; }
  .stack { display:block !important; width:100% !important; padding:0 0 12px 0 !important; }
  .hide-mobile { display:none !important; max-height:0 !important; overflow:hidden !important; }
  h1 { font-size:26px !important; line-height:32px !important; }
}
@media (prefers-color-scheme: dark) {
  .dark-bg { background:#111111 !important; }
  .dark-text { color:#f2f2f2 !important; }
}
</style>
</head>
<body id="body" style="word-spacing:normal;background-color:[[bg]];margin:0;padding:0;">
<div style="display:none;font-size:1px;color:[[bg]];line-height:1px;max-height:0px;max-width:0px;opacity:0;overflow:hidden;">[[preh]]&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;</div>
<div class="dark-bg" style="background-color:[[bg]];" lang="en" dir="ltr">
<!--[if mso | IE]><table align="center" border="0" cellpadding="0" cellspacing="0" class="" role="presentation" style="width:[[width]]px;" width="[[width]]" ><tr><td style="line-height:0px;font-size:0px;mso-line-height-rule:exactly;"><![endif]-->
<div style="margin:0px auto;max-width:[[width]]px;">
<table align="center" border="0" cellpadding="0" cellspacing="0" role="presentation" style="width:100%;">
<tr><td style="padding:12px 32px;text-align:right;font-family:[[font]];font-size:12px;color:[[muted]];">Trouble viewing this email? <a href="[[lv]]" style="color:[[muted]];text-decoration:underline;">View it in your browser</a></td></tr>
"""

HEAD_LEAN = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>[[subj]]</title>
<style>
  body { margin:0; padding:0; background:[[bg]]; }
  a { color:[[primary]]; }
  @media (max-width: 620px) { .container { width:100% !important; } .stack { display:block !important; width:100% !important; } }
</style>
</head>
<body style="margin:0;padding:0;background:[[bg]];">
<span style="display:none!important;opacity:0;color:transparent;height:0;width:0;overflow:hidden;">[[preh]]</span>
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="background:[[bg]];">
<tr><td align="center" style="padding:24px 12px;">
<table role="presentation" class="container" width="[[width]]" cellpadding="0" cellspacing="0" border="0" style="width:[[width]]px;max-width:[[width]]px;">
"""

HEAD_LEGACY = """<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN" "http://www.w3.org/TR/html4/loose.dtd">
<HTML>
<HEAD>
<META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=utf-8">
<TITLE>[[subj]]</TITLE>
</HEAD>
<BODY BGCOLOR="[[bg]]" LEFTMARGIN="0" TOPMARGIN="0" MARGINWIDTH="0" MARGINHEIGHT="0" LINK="[[primary]]" VLINK="[[primary]]">
<CENTER>
<TABLE WIDTH="100%" BGCOLOR="[[bg]]" CELLPADDING="0" CELLSPACING="0" BORDER="0"><TR><TD ALIGN="center" VALIGN="top">
<TABLE WIDTH="[[width]]" CELLPADDING="0" CELLSPACING="0" BORDER="0">
<TR><TD ALIGN="center" STYLE="padding:8px;"><FONT FACE="Arial, Helvetica, sans-serif" SIZE="1" COLOR="[[muted]]">[[preh]] &nbsp;|&nbsp; <A HREF="[[lv]]"><FONT COLOR="[[muted]]">Web version</FONT></A></FONT></TD></TR>
"""

HEADER = """<tr>
  <td style="background:[[header_bg]];padding:20px 32px;border-radius:[[radius]] [[radius]] 0 0;">
    <table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0"><tr>
      <td valign="middle"><a href="[[ln1]]" target="_blank"><img src="[[logo]]" width="[[logo_w]]" alt="[[company]]" style="display:block;border:0;outline:none;height:auto;width:[[logo_w]]px;"></a></td>
      <td class="hide-mobile" align="right" valign="middle" style="font-family:[[font]];font-size:13px;">
        <a href="[[ln2]]" style="color:[[header_fg]];text-decoration:none;padding:0 8px;">Shop</a>
        <a href="[[ln3]]" style="color:[[header_fg]];text-decoration:none;padding:0 8px;">Account</a>
        <a href="[[ln4]]" style="color:[[header_fg]];text-decoration:none;padding:0 0 0 8px;">Help</a>
      </td>
    </tr></table>
  </td>
</tr>
"""

HERO = """<tr>
  <td class="dark-bg" style="background:#ffffff;padding:36px 32px 8px 32px;font-family:[[font]];">
    <h1 class="dark-text" style="margin:0 0 12px 0;font-size:30px;line-height:36px;font-weight:bold;color:[[text]];">[[hero]]</h1>
    <p style="margin:0;font-size:16px;line-height:24px;color:[[muted]];">[[sub]]</p>
  </td>
</tr>
"""

HERO_IMG = """<tr>
  <td style="background:#ffffff;padding:0;">
    <a href="[[lc2]]" target="_blank"><img src="https://cdn.[[domain]]/campaigns/[[img_hero]]/hero-1200x600.jpg" width="[[width]]" alt="[[hero]]" style="display:block;width:100%;max-width:[[width]]px;height:auto;border:0;"></a>
  </td>
</tr>
"""

INTRO = """<tr>
  <td class="dark-text" style="background:#ffffff;padding:20px 32px 8px 32px;font-family:[[font]];font-size:16px;line-height:25px;color:[[text]];">
    <p style="margin:0 0 16px 0;">[[hello]]</p>
    <p style="margin:0 0 16px 0;">[[intro]]</p>
  </td>
</tr>
"""

BUTTON = """<tr>
  <td align="center" style="background:#ffffff;padding:16px 32px 28px 32px;">
    <!--[if mso]>
    <v:roundrect xmlns:v="urn:schemas-microsoft-com:vml" xmlns:w="urn:schemas-microsoft-com:office:word" href="[[lc]]" style="height:46px;v-text-anchor:middle;width:260px;" arcsize="10%" stroke="f" fillcolor="[[primary]]">
      <w:anchorlock/>
      <center style="color:[[btn_text]];font-family:Arial,sans-serif;font-size:16px;font-weight:bold;">[[cta]]</center>
    </v:roundrect>
    <![endif]-->
    <!--[if !mso]><!-- -->
    <table border="0" cellpadding="0" cellspacing="0" role="presentation" style="border-collapse:separate;line-height:100%;"><tr>
      <td align="center" bgcolor="[[primary]]" role="presentation" style="border:none;border-radius:[[radius]];cursor:auto;mso-padding-alt:12px 28px;background:[[primary]];" valign="middle">
        <a href="[[lc]]" style="display:inline-block;background:[[primary]];color:[[btn_text]];font-family:[[font]];font-size:16px;font-weight:bold;line-height:120%;margin:0;text-decoration:none;text-transform:none;padding:14px 32px;mso-padding-alt:0px;border-radius:[[radius]];" target="_blank">[[cta]]</a>
      </td>
    </tr></table>
    <!--<![endif]-->
  </td>
</tr>
"""

OUTRO = """<tr>
  <td style="background:#ffffff;padding:8px 32px 28px 32px;font-family:[[font]];font-size:15px;line-height:23px;color:[[text]];border-radius:0 0 [[radius]] [[radius]];">
    <p style="margin:0 0 16px 0;">[[outro]]</p>
    <p style="margin:0;">[[signoff]]<br><strong>[[signer]]</strong><br><span style="color:[[muted]];font-size:13px;">[[signer_title]]</span></p>
  </td>
</tr>
"""

FOOTER = """<tr>
  <td style="padding:28px 32px 12px 32px;background:[[footer_bg]];text-align:center;font-family:[[font]];">
    <table role="presentation" align="center" cellpadding="0" cellspacing="0" border="0"><tr>
[[social_cells]]
    </tr></table>
  </td>
</tr>
<tr>
  <td style="padding:8px 32px 32px 32px;background:[[footer_bg]];text-align:center;font-family:[[font]];font-size:12px;line-height:18px;color:[[muted]];">
    <p style="margin:0 0 10px 0;"><strong>[[company]]</strong> &middot; [[addr1]] &middot; [[city]] [[region]] [[postal]] &middot; [[country]]</p>
    <p style="margin:0 0 10px 0;">This email was sent to <a href="mailto:[[email]]" style="color:[[muted]];">[[email]]</a> [[why]]</p>
    <p style="margin:0 0 10px 0;">
      <a href="[[lu]]" style="color:[[muted]];text-decoration:underline;">Unsubscribe</a> &nbsp;|&nbsp;
      <a href="[[lp]]" style="color:[[muted]];text-decoration:underline;">Update email preferences</a> &nbsp;|&nbsp;
      <a href="[[lpriv]]" style="color:[[muted]];text-decoration:underline;">Privacy Policy</a> &nbsp;|&nbsp;
      <a href="[[lhelp]]" style="color:[[muted]];text-decoration:underline;">Help Center</a>
    </p>
    <p style="margin:0 0 10px 0;">[[legal_name]] is registered in [[country]] under company number [[reg_no]]. VAT ID [[vat]]. Prices and offers are subject to availability and may change without notice. Offers cannot be combined with other promotions unless stated otherwise. See website for full terms and conditions.</p>
    <p style="margin:0;">&copy; [[year]] [[legal_name]]. All rights reserved. [[company]] and the [[company]] logo are trademarks of [[legal_name]].</p>
  </td>
</tr>
"""

FOOTER_TX = """<tr>
  <td style="padding:24px 32px 32px 32px;background:[[footer_bg]];text-align:center;font-family:[[font]];font-size:12px;line-height:18px;color:[[muted]];">
    <p style="margin:0 0 10px 0;">Need help? Visit our <a href="[[lhelp]]" style="color:[[muted]];">Help Center</a> or reply to this email &mdash; a real person reads every message. Please do not share this email; it contains information about your account.</p>
    <p style="margin:0 0 10px 0;">You are receiving this service message because you have an account with [[company]]. <a href="[[lp]]" style="color:[[muted]];">Notification settings</a> &middot; <a href="[[lpriv]]" style="color:[[muted]];">Privacy</a></p>
    <p style="margin:0;">[[legal_name]] &middot; [[addr1]] &middot; [[city]] [[region]] [[postal]] &middot; [[country]] &middot; Reg. no. [[reg_no]]</p>
  </td>
</tr>
"""

TAIL_MJML = """</table>
</div>
<!--[if mso | IE]></td></tr></table><![endif]-->
</div>
<img src="[[px]]" width="1" height="1" alt="" style="display:block;height:1px!important;width:1px!important;border-width:0!important;margin:0!important;padding:0!important;">
</body>
</html>
"""
TAIL_LEAN = """</table>
</td></tr>
</table>
<img src="[[px]]" alt="" width="1" height="1" border="0" style="height:1px!important;width:1px!important;border-width:0!important;">
</body>
</html>
"""
TAIL_LEGACY = """</TABLE>
</TD></TR></TABLE>
</CENTER>
<IMG SRC="[[px]]" WIDTH="1" HEIGHT="1" BORDER="0" ALT="">
</BODY>
</HTML>
"""
SHELLS = {"mjml": (HEAD_MJML, TAIL_MJML), "lean": (HEAD_LEAN, TAIL_LEAN),
          "legacy": (HEAD_LEGACY, TAIL_LEGACY)}

ITEMS_OPEN = """<tr>
  <td style="background:#ffffff;padding:8px 32px 0 32px;">
    <p style="margin:0 0 8px 0;font-family:[[font]];font-size:13px;font-weight:bold;text-transform:uppercase;letter-spacing:1px;color:[[muted]];">[[sec_title]]</p>
    <table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0">
      [[thead]]
"""
ITEMS_CLOSE = """    </table>
  </td>
</tr>
"""
TOTALS = """<tr>
  <td style="background:#ffffff;padding:8px 32px 16px 32px;">
    <table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="font-family:[[font]];font-size:14px;line-height:22px;color:[[text]];">
      <tr><td align="right" style="padding:2px 12px 2px 0;color:[[muted]];">Subtotal</td><td align="right" width="120">[[subtotal]]</td></tr>
      <tr><td align="right" style="padding:2px 12px 2px 0;color:[[muted]];">Shipping &amp; handling</td><td align="right">[[shipping]]</td></tr>
      <tr><td align="right" style="padding:2px 12px 2px 0;color:[[muted]];">Estimated tax</td><td align="right">[[tax]]</td></tr>
      <tr><td align="right" style="padding:8px 12px 2px 0;border-top:2px solid [[text]];font-weight:bold;">Total</td><td align="right" style="padding-top:8px;border-top:2px solid [[text]];font-weight:bold;font-size:16px;">[[total]]</td></tr>
    </table>
    <p style="margin:12px 0 0 0;font-family:[[font]];font-size:13px;line-height:19px;color:[[muted]];">Paid with [[card]] ending in [[last4]] on [[date]].</p>
  </td>
</tr>
"""
DETAILS = """<tr>
  <td style="background:#ffffff;padding:8px 32px 16px 32px;">
    <table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="background:[[bg]];border-radius:[[radius]];font-family:[[font]];font-size:14px;line-height:21px;color:[[text]];">
      <tr><td style="padding:16px 20px;">
        [[details]]
      </td></tr>
    </table>
  </td>
</tr>
"""
DETAILS_COMPACT = """<p style="margin:0 0 16px 0;padding:12px 16px;background:[[bg]];border-radius:[[radius]];font-size:14px;">[[details]]</p>
"""
THEAD_LINES = """<tr><th align="left" style="padding:8px 8px 8px 0;border-bottom:2px solid [[text]];font-family:[[font]];font-size:12px;color:[[muted]];">Item</th><th style="padding:8px;border-bottom:2px solid [[text]];font-family:[[font]];font-size:12px;color:[[muted]];">Qty</th><th align="right" style="padding:8px;border-bottom:2px solid [[text]];font-family:[[font]];font-size:12px;color:[[muted]];">Price</th><th align="right" style="padding:8px 0 8px 8px;border-bottom:2px solid [[text]];font-family:[[font]];font-size:12px;color:[[muted]];">Total</th></tr>"""
THEAD_ACT = """<tr><th align="left" style="padding:8px 8px 8px 0;border-bottom:2px solid [[text]];font-family:[[font]];font-size:12px;color:[[muted]];">When</th><th align="left" style="padding:8px;border-bottom:2px solid [[text]];font-family:[[font]];font-size:12px;color:[[muted]];">Device</th><th align="left" style="padding:8px;border-bottom:2px solid [[text]];font-family:[[font]];font-size:12px;color:[[muted]];">IP address</th><th align="left" style="padding:8px 0 8px 8px;border-bottom:2px solid [[text]];font-family:[[font]];font-size:12px;color:[[muted]];">Location</th></tr>"""
THEAD_TXN = """<tr><th align="left" style="padding:8px 8px 8px 0;border-bottom:2px solid [[text]];font-family:[[font]];font-size:12px;color:[[muted]];">Date</th><th align="left" style="padding:8px;border-bottom:2px solid [[text]];font-family:[[font]];font-size:12px;color:[[muted]];">Description</th><th align="right" style="padding:8px;border-bottom:2px solid [[text]];font-family:[[font]];font-size:12px;color:[[muted]];">Amount</th><th align="right" style="padding:8px 0 8px 8px;border-bottom:2px solid [[text]];font-family:[[font]];font-size:12px;color:[[muted]];">Balance</th></tr>"""
THEAD_INV = """<tr><th align="left" style="padding:8px 8px 8px 0;border-bottom:2px solid [[text]];font-family:[[font]];font-size:12px;color:[[muted]];">Invoice</th><th align="left" style="padding:8px;border-bottom:2px solid [[text]];font-family:[[font]];font-size:12px;color:[[muted]];">Issued</th><th align="right" style="padding:8px 0 8px 8px;border-bottom:2px solid [[text]];font-family:[[font]];font-size:12px;color:[[muted]];">Amount due</th></tr>"""

SECTION_TITLE = """<tr>
  <td style="background:#ffffff;padding:24px 32px 8px 32px;font-family:[[font]];">
    <h2 style="margin:0;font-size:20px;line-height:26px;color:[[text]];border-bottom:3px solid [[accent]];padding-bottom:8px;">[[sec_title]]</h2>
  </td>
</tr>
"""

# Plain-text shells
TEXT_FOOTER_MKT = """
--
[[company]] | [[addr1]] | [[city]] [[region]] [[postal]] | [[country]]
You are receiving this email because you subscribed at [[domain]].
Unsubscribe: [[lu]]
Manage preferences: [[lp]]
Privacy policy: https://www.[[domain]]/privacy
(c) [[year]] [[legal_name]]. Reg. no. [[reg_no]], VAT ID [[vat]].
"""
TEXT_FOOTER_TX = """
--
This is a service message from [[company]] about your account.
Help Center: https://[[help]]/ | Support: [[support]]
[[legal_name]], [[addr1]], [[city]] [[postal]], [[country]]
"""
TEXT_FOOTER_SALES = """
--
[[sender]]
[[sender_title]], [[company]]
[[sender_phone]] | https://www.[[domain]]
[[addr1]], [[city]] [[postal]], [[country]]

If you'd rather not hear from me again, just reply "unsubscribe" or click here: [[lu]]

CONFIDENTIALITY NOTICE: This email and any attachments are intended solely for
the addressee and may contain confidential or privileged information. If you
have received it in error, please notify the sender and delete it. [[legal_name]]
processes personal data in accordance with its privacy notice at
https://www.[[domain]]/privacy. Registered office: [[addr1]], [[city]].
"""

# Compact transactional layout (GitHub/Stripe-style service mail).
HEAD_COMPACT = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width">
<title>[[subj]]</title>
</head>
<body style="margin:0;padding:0;background:#ffffff;font-family:[[font]];color:[[text]];">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0"><tr><td align="center" style="padding:32px 16px;">
<table role="presentation" width="[[width]]" cellpadding="0" cellspacing="0" border="0" style="max-width:[[width]]px;text-align:left;">
<tr><td style="padding:0 0 24px 0;"><img src="[[logo]]" width="[[logo_w]]" alt="[[company]]" style="display:block;border:0;height:auto;"></td></tr>
<tr><td style="border:1px solid [[border]];border-radius:[[radius]];padding:24px 28px;font-size:15px;line-height:23px;">
<h1 style="margin:0 0 16px 0;font-size:22px;line-height:30px;font-weight:600;">[[hero]]</h1>
<p style="margin:0 0 16px 0;">[[hello]]</p>
<p style="margin:0 0 16px 0;">[[intro]]</p>
<p style="margin:0 0 24px 0;"><a href="[[lc]]" style="display:inline-block;padding:10px 20px;background:[[primary]];color:[[btn_text]];border-radius:[[radius]];text-decoration:none;font-weight:600;">[[cta]]</a></p>
"""
COMPACT_SEC_OPEN = """<p style="margin:8px 0 8px 0;font-size:13px;font-weight:600;color:[[muted]];">[[sec_title]]</p>
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0">
[[thead]]
"""
TAIL_COMPACT = """</table>
<p style="margin:24px 0 0 0;">[[outro]]</p>
<p style="margin:16px 0 0 0;">[[signoff]]<br>[[signer]]</p>
</td></tr>
<tr><td style="padding:20px 0 0 0;font-size:12px;line-height:18px;color:[[muted]];">
You're receiving this email because of your account on [[domain]]. <a href="[[lp]]" style="color:[[muted]];">Notification settings</a> &middot; <a href="[[lhelp]]" style="color:[[muted]];">Help</a><br>
[[legal_name]] &middot; [[addr1]] &middot; [[city]] [[postal]] &middot; [[country]]
</td></tr>
</table>
</td></tr></table>
<img src="[[px]]" width="1" height="1" alt="" style="display:block;border:0;">
</body>
</html>
"""

# Personal (Gmail/Outlook-composed) HTML used by sales sequencing tools.
HEAD_PERSONAL = """<div dir="ltr"><div style="font-family:arial,sans-serif;font-size:small;color:#222222">Hi [[first]],</div><div style="font-family:arial,sans-serif;font-size:small;color:#222222"><br></div><div style="font-family:arial,sans-serif;font-size:small;color:#222222">[[intro]]</div><div style="font-family:arial,sans-serif;font-size:small;color:#222222"><br></div><div style="font-family:arial,sans-serif;font-size:small;color:#222222">[[para1]]</div><div style="font-family:arial,sans-serif;font-size:small;color:#222222"><br></div><div style="font-family:arial,sans-serif;font-size:small;color:#222222">[[sec_title]]:</div><ul style="font-family:arial,sans-serif;font-size:small;color:#222222">
"""
MID_PERSONAL = """</ul><div style="font-family:arial,sans-serif;font-size:small;color:#222222">[[outro]] Here's my calendar to grab the next slot: <a href="[[lcal]]" target="_blank">[[cal_label]]</a></div><div style="font-family:arial,sans-serif;font-size:small;color:#222222"><br></div><div style="font-family:arial,sans-serif;font-size:small;color:#222222">Best,</div><div><div dir="ltr" class="gmail_signature" data-smartmail="gmail_signature"><div dir="ltr"><table cellpadding="0" cellspacing="0" style="font-family:Arial,sans-serif;font-size:12px;color:#444444"><tr><td style="padding-right:12px;border-right:2px solid [[primary]]"><img src="[[logo]]" width="90" alt="[[company]]" style="display:block"></td><td style="padding-left:12px"><b style="color:#222222;font-size:13px">[[sender]]</b><br>[[sender_title]] | [[company]]<br><a href="tel:[[sender_phone]]" style="color:#444444;text-decoration:none">[[sender_phone]]</a><br><a href="[[ln1]]" style="color:[[primary]]">[[domain]]</a></td></tr></table><div style="font-size:10px;color:#999999;margin-top:8px">This email and any attachments are confidential and intended solely for the addressee. If you received it in error, please notify the sender and delete it. [[legal_name]], [[addr1]], [[city]]. <a href="[[lu]]" style="color:#999999">Unsubscribe</a></div></div></div></div></div><br>
"""
TAIL_PERSONAL = """<img src="[[px]]" alt="" width="1" height="1" style="display:none">
"""


# --------------------------------------------------------------------------
# Templates.  kind: html body layout or text; blk: main repeated block.
# --------------------------------------------------------------------------

def T(tid, name, fmt, cat, bc, w, blk, kmin, kmax, **kw):
    d = dict(tid=tid, name=name, fmt=fmt, cat=cat, bc=bc, w=w, blk=blk, kmin=kmin, kmax=kmax)
    d.update(kw)
    return d


TEMPLATES = [
    # ---- marketing / newsletters (broadcast capable) ----
    T(1, "newsletter_weekly", "html", "mkt", True, 3.0, "article", 1, 45,
      subj="[[nl_name]]: [[headline]]", preh="This week at [[company]]: [[headline]] and more.",
      hero="[[nl_name]] &mdash; [[date_short]]", sub="[[para1]]",
      hello="Hi [[greet]],", intro="[[para2]]", cta="Read all stories",
      outro="That's all for this week. Hit reply and tell us what you'd like to read next &mdash; we read every response.",
      hero_img=True),
    T(2, "newsletter_monthly", "html", "mkt", True, 2.0, "article", 2, 45,
      subj="Your [[month]] update from [[company]]", preh="[[headline]]",
      hero="The [[month]] roundup", sub="[[para1]]", hello="Hello [[greet]],",
      intro="[[para2]]", cta="Visit the blog", sec="Top stories this month",
      outro="Thanks for reading. See you next month!", hero_img=True),
    T(3, "product_launch", "html", "mkt", True, 1.5, "feature", 2, 35,
      subj="Introducing: [[headline]]", preh="[[para1]]", hero="[[headline]]",
      sub="[[para1]]", hello="Hi [[greet]],", intro="[[para2]]", cta="Try it now",
      sec="What's inside", outro="We can't wait to see what you build with it.", hero_img=True),
    T(4, "promo_sale", "html", "mkt", True, 2.5, "product", 2, 40,
      subj="[[pct]]% off [[offer]] &mdash; ends soon", preh="Use code [[promo]] at checkout.",
      hero="[[pct]]% off [[offer]]", sub="Use code <strong>[[promo]]</strong> at checkout. Offer ends [[due_date]].",
      hello="Hi [[greet]],", intro="[[para1]]", cta="Shop the sale", sec="Picked for you",
      outro="Offer valid while stocks last. Excludes gift cards.", hero_img=True),
    T(5, "seasonal_campaign", "html", "mkt", True, 1.5, "product", 2, 40,
      subj="The [[season]] edit is here", preh="[[headline]]", hero="The [[season]] edit",
      sub="[[para1]]", hello="Hi [[greet]],", intro="[[para2]]", cta="Explore the collection",
      sec="New arrivals", outro="Free returns on everything, as always.", hero_img=True),
    T(6, "webinar_announcement", "html", "event", True, 1.2, "speaker", 1, 16,
      subj="Live webinar: [[headline]]", preh="Save your seat for [[event_date]].",
      hero="[[headline]]", sub="Live online &middot; [[event_date]] &middot; 17:00 CET",
      hello="Hi [[greet]],", intro="[[para1]]", cta="Save my seat", sec="Meet the speakers",
      outro="Can't make it live? Register anyway and we'll send you the recording."),
    T(7, "blog_digest", "html", "digest", True, 1.5, "article", 2, 45,
      subj="New on the [[company]] blog", preh="[[headline]]", hero="Fresh from the blog",
      sub="[[para1]]", hello="Hi [[greet]],", intro="Here's what we published recently.",
      cta="Browse all posts", outro="Happy reading!"),
    T(8, "activity_digest", "html", "digest", False, 2.0, "digest", 3, 60,
      subj="[[first]], you have [[n_updates]] new updates", preh="Catch up on what you missed.",
      hero="Your daily digest", sub="Here's what happened while you were away, [[first]].",
      hello="Hi [[first]],", intro="[[n_updates]] conversations you follow had new activity.",
      cta="Open [[company]]", outro="You're receiving this digest because notifications are on for these threads."),
    T(9, "community_digest", "html", "digest", True, 1.2, "digest", 3, 60,
      subj="Top discussions in the [[company]] community", preh="[[headline]]",
      hero="Community highlights", sub="The most active threads this week.",
      hello="Hi [[greet]],", intro="[[para1]]", cta="Join the conversation",
      outro="Want fewer emails? Switch to a weekly summary in your settings."),
    T(10, "release_notes", "html", "mkt", True, 1.0, "changelog", 4, 90,
      subj="What's new in [[company]] ([[month]])", preh="[[n_updates]] improvements shipped this month.",
      hero="Product updates", sub="[[para1]]", hello="Hi [[greet]],", intro="[[para2]]",
      cta="Read the changelog", sec="Changelog", outro="As always, send us your feedback."),
    T(11, "plain_newsletter", "text", "mkt", True, 1.2, "textsec", 1, 30,
      intro="[[tpara1]]", hello="Hi [[greet]],"),
    T(12, "survey_request", "html", "mkt", False, 1.0, "question", 2, 8,
      subj="[[first]], how did we do?", preh="Two minutes, five questions.",
      hero="How did we do?", sub="Your feedback helps us improve.",
      hello="Hi [[first]],", intro="Thanks for your recent order [[order_no]]. Would you take a moment to tell us about your experience?",
      cta="Take the full survey", outro="As a thank you, everyone who responds is entered into a draw for a [[cur]]100 gift card."),

    # ---- transactional ----
    T(13, "order_receipt", "html", "tx", False, 3.0, "line", 1, 120,
      subj="Your [[company]] order [[order_no]]", preh="Thanks for your order, [[first]]!",
      hero="Thanks for your order!", sub="Order [[order_no]] &middot; placed [[date]]",
      hello="Hi [[first]],", intro="We've received your order and are getting it ready. We'll send you another email when it ships.",
      cta="View order status", sec="Order summary", thead="THEAD_LINES", totals=True,
      details="<strong>Shipping to</strong><br>[[full]]<br>[[ship_addr]]",
      outro="Questions about your order? Just reply to this email."),
    T(14, "order_receipt_text", "text", "tx", False, 1.5, "line", 1, 150,
      hello="Hi [[first]],",
      intro="Thanks for shopping with [[company]]! Your order [[order_no]] was placed on [[date]].\n\nITEM\tSKU\tQTY\tPRICE\tTOTAL",
      post="\nSubtotal:\t[[subtotal]]\nShipping:\t[[shipping]]\nTax:\t[[tax]]\nTotal:\t[[total]]\n\nPaid with [[card]] ending in [[last4]].\nShipping to: [[full]], [[ship_addr]]\n\nTrack your order: [[lc]]\n"),
    T(15, "password_reset", "html", "tx", False, 2.0, "activity", 1, 20, layout="compact",
      subj="Reset your [[company]] password", preh="Use this link within 60 minutes.",
      hero="Reset your password", sub="We received a request to reset the password for [[email]].",
      hello="Hi [[first]],", intro="Click the button below to choose a new password. This link expires in 60 minutes and can only be used once. If you didn't ask for this, you can safely ignore this email &mdash; your password won't change.",
      cta="Reset password", cta_link="lreset", sec="Recent sign-in activity", thead="THEAD_ACT",
      outro="If the button doesn't work, copy and paste this link into your browser:<br><span style=\"word-break:break-all;font-size:12px;\">[[lreset]]</span>"),
    T(16, "password_reset_text", "text", "tx", False, 1.2, "activity", 1, 25,
      hello="Hi [[first]],",
      intro="Someone (hopefully you) asked to reset the password for your [[company]] account ([[email]]).\n\nReset your password: [[lreset]]\n\nThis link expires in 60 minutes. If you didn't request a reset, ignore this email.\n\nRecent sign-ins on your account:",
      post="\nNot you? Secure your account: [[lc]]\n"),
    T(17, "shipping_notice", "html", "tx", False, 2.5, "line", 1, 60,
      subj="Your order [[order_no]] is on its way", preh="Arriving [[eta_date]].",
      hero="Your order is on its way!", sub="Estimated delivery: <strong>[[eta_date]]</strong>",
      hello="Hi [[first]],", intro="Good news &mdash; your package has left our warehouse. Track it with [[carrier]] using tracking number <strong>[[tracking_no]]</strong>.",
      cta="Track package", sec="What's in the box", thead="THEAD_LINES",
      extra=("track", 2, 9, "Shipment progress"),
      details="<strong>Delivering to</strong><br>[[full]]<br>[[ship_addr]]<br><br><strong>Carrier</strong><br>[[carrier]] &middot; [[tracking_no]]",
      outro="Not home? You can redirect the delivery from the tracking page."),
    T(18, "delivery_confirmation", "html", "tx", False, 1.2, "line", 1, 30,
      subj="Delivered: your order [[order_no]]", preh="Your package was delivered.",
      hero="Delivered!", sub="Your package was delivered on [[date]] at [[time]].",
      hello="Hi [[first]],", intro="Your order has been delivered. We hope you love it. If anything isn't right, you can start a return within 30 days.",
      cta="Rate your items", sec="Delivered items", thead="THEAD_LINES",
      extra=("track", 3, 11, "Delivery history"),
      outro="Didn't receive it? Let us know within 48 hours."),
    T(19, "account_welcome", "html", "tx", False, 1.5, "step", 3, 12,
      subj="Welcome to [[company]], [[first]]!", preh="Here's how to get started.",
      hero="Welcome aboard, [[first]]!", sub="Your account is ready. Here's how to get the most out of [[company]].",
      hello="Hi [[first]],", intro="[[para1]]", cta="Go to my account",
      sec="Get started in a few steps", outro="Need a hand? Our team is one reply away."),
    T(20, "email_verification", "html", "tx", False, 1.0, "activity", 1, 6, layout="compact",
      subj="Your [[company]] verification code: [[code]]", preh="Code [[code]] expires in 10 minutes.",
      hero="Verify your email", sub="Enter this code to finish signing in:",
      hello="Hi [[first]],", intro="<span style=\"display:inline-block;font-size:32px;letter-spacing:8px;font-weight:bold;font-family:monospace;padding:12px 20px;border:1px dashed #999;\">[[code]]</span><br><br>Or click the button below to verify [[email]].",
      cta="Verify email", cta_link="lverify", sec="Request details", thead="THEAD_ACT",
      outro="If you didn't try to sign in, you can ignore this email."),
    T(21, "subscription_renewal", "html", "tx", False, 1.5, "line", 1, 40,
      subj="Your [[company]] subscription renews on [[due_date]]", preh="[[total]] will be charged to your [[card]].",
      hero="Your subscription is renewing", sub="Renewal date: [[due_date]]",
      hello="Hi [[first]],", intro="This is a friendly reminder that your subscription renews soon. No action is needed if you'd like to continue.",
      cta="Manage subscription", sec="Renewal summary", thead="THEAD_LINES", totals=True,
      outro="Want to change plans? You can upgrade, downgrade or cancel any time before the renewal date."),
    T(22, "payment_failed", "html", "tx", False, 1.0, "invref", 1, 25, layout="compact",
      subj="Action required: payment failed", preh="We couldn't charge your [[card]] ending in [[last4]].",
      hero="We couldn't process your payment", sub="Please update your payment method to avoid interruption.",
      hello="Hi [[first]],", intro="Your most recent payment of [[amount]] with your [[card]] ending in [[last4]] was declined. We'll retry automatically in 3 days.",
      cta="Update payment method", sec="Outstanding invoices", thead="THEAD_INV",
      outro="If you've already updated your card, you can ignore this message."),
    T(23, "refund_processed", "html", "tx", False, 1.0, "line", 1, 30,
      subj="Your refund for order [[order_no]]", preh="Refund of [[total]] issued.",
      hero="Your refund is on its way", sub="Order [[order_no]] &middot; refund issued [[date]]",
      hello="Hi [[first]],", intro="We've processed your return. Refunds usually appear on your statement within 5&ndash;10 business days.",
      cta="View return", sec="Refunded items", thead="THEAD_LINES", totals=True,
      outro="Thanks for shopping with us."),
    T(24, "security_alert_text", "text", "tx", False, 1.2, "activity", 2, 40,
      hello="Hi [[first]],",
      intro="We noticed a new sign-in to your [[company]] account from [[device]] near [[loc]] (IP [[ip]]) on [[date]] at [[time]] UTC.\n\nIf this was you, there's nothing you need to do.\nIf this wasn't you, secure your account now: [[lc]]\n\nAll sign-ins in the last 30 days:",
      post="\nTip: turn on two-factor authentication for extra protection: [[lc2]]\n"),

    # ---- invoices / statements ----
    T(25, "invoice", "html", "inv", False, 2.0, "line", 1, 180,
      subj="Invoice [[invoice_no]] from [[company]]", preh="Amount due [[total]] by [[due_date]].",
      hero="Invoice [[invoice_no]]", sub="Issued [[date]] &middot; due [[due_date]]",
      hello="Dear [[full]],", intro="Please find your invoice below. A PDF copy is attached for your records.",
      cta="Pay invoice", sec="Invoice details", thead="THEAD_LINES", totals=True,
      details="<strong>Billed to</strong><br>[[full]]<br>[[rcompany]]<br>[[ship_addr]]<br><br><strong>Payment terms</strong><br>Net 30 &middot; Bank transfer or card",
      outro="Thank you for your business."),
    T(26, "invoice_text", "text", "inv", False, 1.5, "line", 1, 200,
      hello="Dear [[full]],",
      intro="Invoice [[invoice_no]] from [[legal_name]]\nIssued: [[date]]\nDue: [[due_date]]\nBilled to: [[rcompany]], [[ship_addr]]\n\nDESCRIPTION\tSKU\tQTY\tUNIT\tAMOUNT",
      post="\nSubtotal\t[[subtotal]]\nVAT/Tax\t[[tax]]\nTOTAL DUE\t[[total]]\n\nPay online: [[lc]]\nBank transfer reference: [[invoice_no]]\nA copy has been filed to \\\\fs01\\ap\\invoices\\[[year]]\\[[invoice_no]].pdf as requested.\n"),
    T(27, "invoice_reminder", "html", "inv", False, 1.0, "invref", 1, 40, layout="compact",
      subj="Reminder: invoices overdue", preh="You have outstanding invoices with [[company]].",
      hero="Friendly payment reminder", sub="Some invoices on your account are past due.",
      hello="Dear [[full]],", intro="Our records show the following invoices remain unpaid. If you've already paid, please disregard this reminder.",
      cta="Pay now", sec="Outstanding invoices", thead="THEAD_INV",
      outro="Questions about a charge? Reply to this email and our billing team will help."),
    T(28, "monthly_statement", "html", "inv", False, 1.5, "txn", 5, 260,
      subj="Your [[month]] statement is ready", preh="Account [[acct]].",
      hero="Your monthly statement", sub="Account [[acct]] &middot; period ending [[date]]",
      hello="Hi [[first]],", intro="Your statement for [[month]] is ready. Opening balance: <strong>[[open_bal]]</strong>.",
      cta="Download PDF", sec="Transactions", thead="THEAD_TXN",
      post_html="Closing balance: <strong>[[close_bal]]</strong>",
      outro="Spot something you don't recognise? Freeze your card instantly in the app."),

    # ---- outreach / follow-ups (plain text) ----
    T(29, "cold_outreach_1", "text", "sales", False, 2.0, "bullet", 1, 8,
      hello="Hi [[first]],",
      intro="I came across [[rcompany]] while researching teams in your space and wanted to reach out.\n\n[[tpara1]]\n\n[[tpara2]]\n\nCompanies like yours usually come to us when they want to [[benefit]]. Would it make sense to find 20 minutes next [[weekday]] to see if there's a fit?\n\nA few things we could cover:",
      post="\nHere's my calendar if that's easier: [[lcal]]\n\nBest,"),
    T(30, "cold_outreach_2", "text", "sales", False, 1.5, "quoted", 1, 3,
      hello="Hi [[first]],",
      intro="Just floating this back to the top of your inbox. I know things get busy as [[rtitle]] at [[rcompany]].\n\n[[tpara1]]\n\nWorth a quick chat? Grab any slot here: [[lcal]]\n\nThanks,\n[[sender]]\n",
      post=""),
    T(31, "cold_outreach_3", "text", "sales", False, 1.0, "quoted", 2, 5,
      hello="Hi [[first]],",
      intro="I haven't heard back, so I'll assume the timing isn't right and close the loop on my side.\n\nIf [[benefit]] becomes a priority later this year, I'm happy to pick this up again. In the meantime, here's a short case study you might find useful: [[lc]]\n\nAll the best,\n[[sender]]\n",
      post=""),
    T(32, "sales_followup", "html", "sales", False, 1.5, "quoted_html", 0, 6, layout="personal",
      extra=("reslink", 2, 7, ""),
      subj="Following up: [[company]] for [[rcompany]]", preh="Notes and next steps from our call.",
      hero="Great speaking with you, [[first]]", sub="Here's a recap and the resources I mentioned.",
      hello="Hi [[first]],", intro="Thanks for taking the time on [[weekday]], great to meet the [[rcompany]] team. As promised, here are a few resources that map to what you shared about [[rcompany]].",
      cta="Book the next call", cta_link="lcal", sec="A few resources for your team",
      outro="Let me know if anything's missing before we meet again.", sig_personal=True),
    T(33, "meeting_followup", "text", "sales", False, 1.2, "action", 2, 14,
      hello="Hi [[first]],",
      intro="Thanks again for the time today. Quick recap of what we discussed with the [[rcompany]] team:\n\n[[tpara1]]\n\nNext steps:",
      post="\nRecording and slides: [[lc]]\nShared notes: [[lc2]]\n\nTalk soon,\n[[sender]]\n"),

    # ---- events ----
    T(34, "event_invitation", "html", "event", True, 1.5, "agenda", 3, 30,
      subj="You're invited: [[event]]", preh="[[event_city]] &middot; [[event_date]]",
      hero="Join us at [[event]]", sub="[[event_venue]], [[event_city]] &middot; [[event_date]]",
      hello="Hi [[greet]],", intro="[[para1]]", cta="Register now", sec="Agenda",
      outro="Space is limited &mdash; we'd love to see you there.", hero_img=True),
    T(35, "event_reminder", "html", "event", False, 1.0, "agenda", 2, 20,
      subj="Reminder: [[event]] is coming up", preh="Your ticket and agenda inside.",
      hero="See you soon, [[first]]!", sub="[[event]] &middot; [[event_venue]], [[event_city]] &middot; [[event_date]]",
      hello="Hi [[first]],", intro="Your registration is confirmed. Bring this email or the QR code in the app to check in. Doors open at 08:30.",
      cta="Add to calendar", cta_link="lcal", sec="Your sessions",
      details="<strong>Attendee</strong><br>[[full]] &middot; [[rcompany]]<br><br><strong>Ticket</strong><br>[[plan]] &middot; #[[code]]",
      outro="Can't make it anymore? Please release your ticket so someone on the waitlist can attend."),
    T(36, "event_thankyou", "html", "event", True, 1.0, "speaker", 1, 16,
      subj="Thanks for joining [[event]]", preh="Recordings and slides are now available.",
      hero="Thank you for joining us", sub="Recordings from [[event]] are now live.",
      hello="Hi [[greet]],", intro="[[para1]]", cta="Watch the recordings", sec="Session highlights",
      outro="Save the date for next year &mdash; early-bird tickets open soon.", hero_img=True),
]
assert len(TEMPLATES) == 36 and [t["tid"] for t in TEMPLATES] == list(range(1, 37))

ROW_GENS.update({
    "month": lambda c: MONTHS[int(DAYS[c["_day"]][1][5:7]) - 1],
    "season": lambda c: c.rng.choice(SEASONS),
    "n_updates": lambda c: str(c.rng.randint(3, 60)),
    "benefit": lambda c: c.rng.choice(INDUSTRIES[c.t.industry]["benefits"]),
    "img_hero": lambda c: hextok(c.rng, 16),
    "ship_addr": lambda c: "%d %s, %s %s, %s" % ((c.rng.randint(1, 999), c.rng.choice(STREETS))
                                                + tuple(c.rng.choice(CITIES)[i] for i in (0, 2, 3))),
    "social_dummy": lambda c: "",
})
for _k in ("ls1", "ls2", "ls3", "ls4", "ls5"):
    ROW_GENS[_k] = _link

# Broadcast sends have no recipient: only generic fields are allowed there.
# (_name returns None in broadcast mode; first/full/email degrade gracefully.)


# --------------------------------------------------------------------------
# Skeleton compilation
# --------------------------------------------------------------------------

_MARK = re.compile(r"\[\[(\w+)\]\]")
_FMT = string.Formatter()


class Rep:
    __slots__ = ("fmt", "main", "lo", "hi")

    def __init__(self, fmt, main, lo=0, hi=0):
        self.fmt, self.main, self.lo, self.hi = fmt, main, lo, hi


def compile_text(text, static):
    for _ in range(4):
        new = _MARK.sub(lambda m: static.get(m.group(1), m.group(0)), text)
        if new == text:
            break
        text = new
    text = text.replace("{", "{{").replace("}", "}}")
    out = _MARK.sub(lambda m: "{" + m.group(1) + "}", text)
    for _, field, _, _ in _FMT.parse(out):
        if field is not None and field not in ROW_GENS and field not in BLOCK_GENS and field != "i":
            raise KeyError("unknown template field %r" % field)
    return out


def social_cells(t):
    cells = []
    for i, s in enumerate(t.social):
        cells.append('      <td style="padding:0 6px;"><a href="[[ls%d]]" target="_blank">'
                     '<img src="https://cdn.%s/email/social/%s-%s.png" width="28" height="28" alt="%s" '
                     'style="display:block;border:0;"></a></td>' % (i + 1, t.domain, s, t.icon_style, cap(s)))
    return "\n".join(cells)


class Skeleton:
    __slots__ = ("tid", "parts", "crlf", "html", "base", "blk", "kmin", "kmax", "bc", "w")


def build_skeleton(t, spec):
    st = dict(t.static)
    for k in ("subj", "preh", "hero", "sub", "hello", "intro", "cta", "outro", "sec", "details", "post", "post_html"):
        if k in spec:
            st[k] = spec[k]
    signer_idx = spec["tid"] % len(t.senders)
    s = t.senders[signer_idx]
    if spec.get("sig_personal"):
        st["signer"], st["signer_title"] = "[[sender]]", "[[sender_title]], [[company]] &middot; [[sender_phone]]"
        st["signoff"] = "Best,"
    else:
        st["signer"] = "The %s Team" % t.company if spec["cat"] in ("mkt", "digest", "tx", "inv") else s[0]
        st["signer_title"] = {"mkt": "[[company]]", "digest": "[[company]]", "tx": "[[support]]",
                              "inv": "Billing &middot; [[support]]", "event": s[1] + ", [[company]]",
                              "sales": s[1]}[spec["cat"]]
        st["signoff"] = "Cheers," if spec["cat"] in ("mkt", "digest") else "Thanks,"
    st["why"] = ("because you subscribed to updates from %s." % t.company if spec["cat"] in ("mkt", "digest", "event")
                 else "because you have an account with %s." % t.company)
    st["sec_title"] = spec.get("sec", "")
    st["social_cells"] = social_cells(t)
    if "thead" in spec:
        st["thead"] = globals()[spec["thead"]]
    parts = []
    hf, tf = BLOCKS[spec["blk"]]
    layout = spec.get("layout")
    if layout == "personal":
        st["cal_label"] = "calendly.com/%s" % slugify(t.senders[0][0])
        parts.append(HEAD_PERSONAL)
        ex = spec["extra"]
        parts.append(Rep(compile_text(BLOCKS[ex[0]][0], st), False, ex[1], ex[2]))
        parts.append(MID_PERSONAL)
        parts.append(Rep(compile_text(hf, st), True))
        parts.append(TAIL_PERSONAL)
        crlf = False
    elif layout == "compact":
        cta_link = spec.get("cta_link", "lc")
        parts.append(HEAD_COMPACT.replace("[[lc]]", "[[" + cta_link + "]]")
                     + (DETAILS_COMPACT if spec.get("details") else "")
                     + COMPACT_SEC_OPEN)
        parts.append(Rep(compile_text(hf, st), True))
        parts.append(TAIL_COMPACT)
        crlf = False
    elif spec["fmt"] == "html":
        head, tail = SHELLS[t.style]
        txt = head + HEADER
        if spec.get("hero_img"):
            txt += HERO_IMG
        txt += HERO + INTRO
        if spec.get("details"):
            txt += DETAILS
        parts.append(txt)
        ex = spec.get("extra")
        if ex:
            st2 = dict(st)
            st2["sec_title"] = ex[3]
            parts.append(compile_text(ITEMS_OPEN.replace("[[thead]]", ""), st2))
            parts.append(Rep(compile_text(BLOCKS[ex[0]][0], st), False, ex[1], ex[2]))
            parts.append(ITEMS_CLOSE)
        if "thead" in spec:
            parts.append(ITEMS_OPEN)
            parts.append(Rep(compile_text(hf, st), True))
            parts.append(ITEMS_CLOSE + (TOTALS if spec.get("totals") else ""))
        else:
            if spec.get("sec"):
                parts.append(SECTION_TITLE)
            parts.append(Rep(compile_text(hf, st), True))
        txt = ""
        if spec.get("post_html"):
            txt += DETAILS.replace("[[details]]", "[[post_html]]")
        cta_link = spec.get("cta_link", "lc")
        txt += BUTTON.replace("[[lc]]", "[[" + cta_link + "]]")
        txt += OUTRO
        txt += FOOTER if spec["cat"] in ("mkt", "digest", "event", "sales") else FOOTER_TX
        txt += tail
        parts.append(txt)
        crlf = False
    else:
        txt = "[[hello]]\n\n[[intro]]\n"
        parts.append(txt)
        parts.append(Rep(compile_text(tf, st), True))
        post = spec.get("post", "")
        if spec["cat"] == "sales":
            footer = TEXT_FOOTER_SALES
        elif spec["cat"] == "mkt":
            footer = "\nThanks for reading,\nThe %s Team\n" % t.company + TEXT_FOOTER_MKT
        else:
            footer = "\nThanks,\nThe %s Team\n" % t.company + TEXT_FOOTER_TX
        parts.append(post + footer)
        crlf = t.crlf and spec["cat"] != "inv"
    sk = Skeleton()
    sk.tid = spec["tid"]
    sk.parts = [p if isinstance(p, Rep) else compile_text(p, st) for p in parts]
    sk.crlf = crlf
    sk.html = spec["fmt"] == "html"
    sk.kmin, sk.kmax = spec["kmin"], spec["kmax"]
    sk.bc = spec["bc"]
    sk.w = spec["w"]
    return sk


def new_ctx(rng, t, bc, html, gens, parent=None):
    c = Ctx()
    c.rng, c.t, c.bc, c.html, c.gens, c.parent = rng, t, bc, html, gens, parent
    return c


def render(sk, rng, t, bc, k):
    html = sk.html
    ctx = new_ctx(rng, t, bc, html, ROW_GENS)
    parts = sk.parts
    out = [None] * len(parts)
    for j, p in enumerate(parts):
        if p.__class__ is Rep:
            n = k if p.main else rng.randint(p.lo, p.hi)
            fmt = p.fmt
            items = []
            for i in range(1, n + 1):
                b = new_ctx(rng, t, bc, html, BLOCK_GENS, ctx)
                b["i"] = i
                items.append(fmt.format_map(b))
            out[j] = "".join(items)
    for j, p in enumerate(parts):
        if p.__class__ is str:
            out[j] = p.format_map(ctx)
    body = "".join(out)
    if sk.crlf:
        body = body.replace("\n", "\r\n")
    return body


def blen(s):
    return len(s) if s.isascii() else len(s.encode("utf-8"))


def estimate(sk, rng, t):
    """Base size (k=0) and per-block size, from a few sample renders."""
    b0 = sum(blen(render(sk, rng, t, False, 0)) for _ in range(2)) / 2.0
    b8 = sum(blen(render(sk, rng, t, False, 8)) for _ in range(2)) / 2.0
    sk.base = b0
    sk.blk = max(40.0, (b8 - b0) / 8.0)


def render_sized(sk, rng, t, bc, target):
    k = int(round((target - sk.base) / sk.blk))
    k = max(sk.kmin, min(sk.kmax, k))
    for _ in range(12):
        body = render(sk, rng, t, bc, k)
        n = blen(body)
        if n < MIN_BODY:
            k += max(1, int(math.ceil((MIN_BODY - n) / sk.blk)))
        elif n > MAX_BODY:
            if k == 0:
                break
            k = max(0, k - max(1, int(math.ceil((n - MAX_BODY) / sk.blk))))
        else:
            return body
    # Extremely unlikely; keep bounds strict anyway.
    if n > MAX_BODY:
        body = body[:MAX_BODY - 8]
        while blen(body) > MAX_BODY:
            body = body[:-64]
    while blen(body) < MIN_BODY:
        body += "\n<!-- -->" if html_like(body) else "\n"
    return body


def html_like(s):
    return s.lstrip().startswith("<")


# --------------------------------------------------------------------------
# Main loop
# --------------------------------------------------------------------------

LOG_LO = math.log(MIN_BODY + 64)
LOG_HI = math.log(MAX_BODY - 400)


def bucket_of(target):
    b = int((math.log(target) - LOG_LO) / (LOG_HI - LOG_LO) * SIZE_BUCKETS)
    return max(0, min(SIZE_BUCKETS - 1, b))


def candidates(skels, only_bc):
    """Per size bucket: cumulative weights over templates whose size range covers it."""
    table = []
    for b in range(SIZE_BUCKETS):
        mid = math.exp(LOG_LO + (b + 0.5) / SIZE_BUCKETS * (LOG_HI - LOG_LO))
        cs = []
        for sk in skels:
            if only_bc and not sk.bc:
                continue
            lo = sk.base + sk.kmin * sk.blk
            hi = sk.base + sk.kmax * sk.blk
            if lo <= mid * 1.1 and hi >= mid * 0.9:
                cs.append(sk)
        if not cs:  # nothing fits: closest template
            pool = [s for s in skels if s.bc or not only_bc]
            cs = [min(pool, key=lambda s: min(abs(s.base + s.kmin * s.blk - mid),
                                             abs(s.base + s.kmax * s.blk - mid)))]
        cum, acc = [], 0.0
        for sk in cs:
            acc += sk.w
            cum.append(acc)
        table.append((cs, cum))
    return table


def generate(rows, ntenants, seed):
    """Yield (id, tenant_uuid, template_id, body) tuples."""
    rng = random.Random(seed)
    used = set()
    tenants = [make_tenant(rng, i, used) for i in range(ntenants)]
    for t in tenants:
        t.skels = [build_skeleton(t, spec) for spec in TEMPLATES]
        for sk in t.skels:
            estimate(sk, rng, t)
        t.cand = candidates(t.skels, False)
        t.cand_bc = candidates(t.skels, True)
        t.pool = []
    # Tenant sizes are skewed (a few big senders, a long tail).
    tw = [1.0 / (i + 1) ** 0.8 for i in range(ntenants)]
    tcum = []
    acc = 0.0
    for w in tw:
        acc += w
        tcum.append(acc)
    total_w = acc
    rnd = rng.random
    for rid in range(1, rows + 1):
        t = tenants[min(ntenants - 1, bisect.bisect_right(tcum, rnd() * total_w))]
        r = rnd()
        if r < DUP_P and t.pool:
            pool = t.pool
            j = len(pool) - 1 - min(len(pool) - 1, int(rng.expovariate(0.6)))
            tid, body = pool[j]
            yield rid, t.uuid, tid, body
            continue
        bc = r < DUP_P + NEW_BROADCAST_P
        target = math.exp(rng.uniform(LOG_LO, LOG_HI))
        cs, cum = (t.cand_bc if bc else t.cand)[bucket_of(target)]
        sk = cs[bisect.bisect_right(cum, rnd() * cum[-1]) if len(cs) > 1 else 0]
        body = render_sized(sk, rng, t, bc, target)
        if bc:
            t.pool.append((sk.tid, body))
            if len(t.pool) > POOL_SIZE:
                del t.pool[0]
        yield rid, t.uuid, sk.tid, body


def copy_escape(s):
    if "\\" in s:
        s = s.replace("\\", "\\\\")
    return s.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def main(argv=None):
    ap = argparse.ArgumentParser(description="Generate a templated-email corpus in COPY text format.")
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--tenants", type=int, default=8)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default="-", help="output file (default: stdout)")
    a = ap.parse_args(argv)
    if a.rows < 0 or a.tenants < 1:
        ap.error("--rows must be >= 0 and --tenants >= 1")
    t0 = time.time()
    out = sys.stdout.buffer if a.out == "-" else open(a.out, "wb", buffering=1 << 20)
    sizes = []
    seen = set()
    dups = 0
    out_bytes = 0
    buf = []
    buf_len = 0
    try:
        for rid, tu, tid, body in generate(a.rows, a.tenants, a.seed):
            raw = body.encode("utf-8")
            sizes.append(len(raw))
            h = hashlib.blake2b(raw, digest_size=16).digest()
            if h in seen:
                dups += 1
            else:
                seen.add(h)
            line = ("%d\t%s\t%d\t" % (rid, tu, tid)).encode("ascii") + copy_escape(body).encode("utf-8") + b"\n"
            buf.append(line)
            buf_len += len(line)
            if buf_len >= (4 << 20):
                out.write(b"".join(buf))
                out_bytes += buf_len
                buf, buf_len = [], 0
        if buf:
            out.write(b"".join(buf))
            out_bytes += buf_len
        out.flush()
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    el = time.time() - t0
    n = len(sizes)
    if n:
        ss = sorted(sizes)
        med = ss[n // 2] if n % 2 else (ss[n // 2 - 1] + ss[n // 2]) / 2.0
        sys.stderr.write(
            "gen_corpus: rows=%d tenants=%d seed=%d\n"
            "  body bytes total=%d (%.1f MiB), COPY output bytes=%d (%.1f MiB)\n"
            "  body size min=%d median=%d mean=%.0f max=%d\n"
            "  exact duplicate bodies=%d (%.1f%%), distinct bodies=%d\n"
            "  elapsed=%.1fs\n" % (
                n, a.tenants, a.seed, sum(sizes), sum(sizes) / 1048576.0, out_bytes,
                out_bytes / 1048576.0, ss[0], med, sum(sizes) / float(n), ss[-1],
                dups, 100.0 * dups / n, len(seen), el))
    else:
        sys.stderr.write("gen_corpus: rows=0\n")


if __name__ == "__main__":
    main()
