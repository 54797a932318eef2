#!/usr/bin/env python3
"""Write strop's example datasets (support, json-extraction, preference) from seeded templates.

Run from anywhere: `python examples/make_examples.py [--out DIR]` (default: the folder this script
lives in). Standard library only and fully deterministic: the same script writes byte-identical
files on every machine, so the committed output can be checked against a fresh run.

Every dataset is built from templates with slot values, then filtered so that no two examples are
accidentally near-duplicates (word 3-gram Jaccard below ACCIDENTAL_SIMILARITY_LIMIT, whole record
including the system prompt) and no validation example resembles a training one. Only the support
training file then receives planted flaws - exact duplicates, near duplicates and personal data -
at positions recorded in support/planted.json and support/README.md, so the cleaning step has
known work to find.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path

SEED = 20261121

# Two examples at or above this word-3-gram Jaccard count as near duplicates. Planted near
# duplicates sit above PLANTED_NEAR_DUPLICATE_MIN; everything else stays below the limit, so a
# MinHash deduplicator with any threshold in between finds exactly the planted ones.
ACCIDENTAL_SIMILARITY_LIMIT = 0.5
PLANTED_NEAR_DUPLICATE_MIN = 0.88

COMPANY = "Fernhollow Outfitters"
GREETING = "Howdy, trail friend!"
SIGN_OFF = "Happy trails! - Moss at Fernhollow Outfitters"
# Deliberately silent about the voice and the policy: fine-tuning has to teach both.
SUPPORT_SYSTEM = "You are the customer support assistant for Fernhollow Outfitters, an outdoor gear shop."

POLICY = [
    "Returns: unused items within 30 days of delivery, free prepaid label; refunds reach the "
    "original payment method 5-10 business days after the return arrives.",
    "Exchanges for another size are free.",
    "Shipping: US and Canada only; orders leave within 1-2 business days; standard shipping takes "
    "3-7 business days and is free on orders over $75 (otherwise $6.95); express takes 1-2 "
    "business days for $19. No exact delivery date is ever promised.",
    "Orders can be cancelled or re-addressed only within 1 hour of being placed.",
    "Warranty: 2 years against manufacturing defects (not wear and tear or accidents); repair or "
    "replacement after a photo and the order number.",
    "Sizing: footwear runs half a size small (go half a size up); apparel is true to size; "
    "regular sleeping bags fit up to 6 ft, long ones up to 6 ft 6 in.",
    "Payment: Visa, Mastercard, Amex, Discover, PayPal and Fernhollow gift cards; never ask for "
    "or repeat a full card number; no price matching, but a price drop within 14 days of purchase "
    "is refunded.",
    "Account changes (email, deletion) are made by the customer in Account Settings, never from chat.",
]

PRODUCTS = {
    "footwear": ["Talus trail shoe", "Scree hiking boot", "Wren approach shoe", "Basalt winter boot"],
    "apparel": ["Driftwood fleece", "Sedge rain shell", "Alder down jacket", "Marten base layer",
                "Thistle softshell vest", "Cobble sun hoodie"],
    "tent": ["Cinderpeak 2 tent", "Hollowcrest 4 tent", "Skylark bivy"],
    "pack": ["Larch 45L pack", "Ptarmigan 28L daypack", "Juniper 65L pack"],
    "sleeping_bag": ["Ember 20F sleeping bag", "Nightjar 35F quilt"],
    "gear": ["Brook camp stove", "Kestrel trekking pole set", "Pika headlamp", "Quillwater filter",
             "Rill water bottle"],
}
ALL_PRODUCTS = [name for names in PRODUCTS.values() for name in names]
WHEN = ["last week", "on Monday", "a few days ago", "yesterday", "over the weekend", "ten days ago",
        "on Tuesday", "last Thursday", "two weeks ago", "earlier this week"]
OPENERS = ["", "", "Hi, ", "Hello! ", "Hey there. ", "Good morning. ", "Hi team, ", "Quick question. ",
           "Hello, ", "Hiya. "]
CLOSERS = ["", "", "", " Thanks!", " Thank you.", " Appreciate it.", " Thanks in advance.", " Cheers."]


# ---------------------------------------------------------------------------------------------
# Similarity: the yardstick for "accidental" and "planted" near duplicates.


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def shingles(text: str, n: int = 3) -> frozenset:
    tokens = words(text)
    if len(tokens) < n:
        return frozenset([" ".join(tokens)])
    # Strings rather than tuples: str caches its hash, which makes the set operations cheap.
    return frozenset(" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def jaccard(a: frozenset, b: frozenset) -> float:
    if not a and not b:
        return 1.0
    shared = len(a & b)
    return shared / (len(a) + len(b) - shared)


def record_text(record: dict) -> str:
    """Every string a deduplicator could look at, in a fixed order."""
    parts: list[str] = []

    def collect(value):
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, dict):
            for key in sorted(value):
                collect(value[key])
        elif isinstance(value, list):
            for item in value:
                collect(item)

    collect(record)
    return "\n".join(parts)


def normalized(text: str) -> str:
    return " ".join(text.lower().split())


class DistinctPool:
    """Keeps records that are neither equal to nor near-duplicates of any record already kept."""

    def __init__(self, limit: float = ACCIDENTAL_SIMILARITY_LIMIT, against: "DistinctPool | None" = None):
        self.limit = limit
        self.against = against
        self.records: list[dict] = []
        self.tags: list[str] = []  # what each kept record is about, for the READMEs
        self._shingles: list[frozenset] = []
        self._keys: set[str] = set()

    def resembles(self, record: dict) -> bool:
        key = normalized(record_text(record))
        grams = shingles(record_text(record))
        if key in self._keys or any(jaccard(grams, seen) >= self.limit for seen in self._shingles):
            return True
        return self.against is not None and self.against.resembles(record)

    def offer(self, record: dict, tag: str = "") -> bool:
        if self.resembles(record):
            return False
        self.records.append(record)
        self.tags.append(tag)
        self._shingles.append(shingles(record_text(record)))
        self._keys.add(normalized(record_text(record)))
        return True


def fill_pool(pool: DistinctPool, make, count: int, rng: random.Random, what: str) -> list[dict]:
    start = len(pool.records)
    attempts = 0
    while len(pool.records) - start < count:
        attempts += 1
        if attempts > count * 200:
            raise RuntimeError(f"{what}: only {len(pool.records) - start} of {count} distinct examples "
                               "after many attempts; add templates or lower the count")
        pool.offer(*make(rng))
    return pool.records[start:]


# ---------------------------------------------------------------------------------------------
# Support: intents with user phrasings and reply sentences, each with interchangeable variants.


@dataclass(frozen=True)
class Intent:
    name: str
    topic: str
    category: str | None  # product category the slot {product} draws from (None: any product)
    users: tuple[str, ...]  # user phrasings; {order} {product} {when} {size} {amount} slots
    body: tuple[tuple[str, ...], ...]  # reply sentences, one variant picked from each tuple


INTENTS = [
    Intent("order_status", "orders", None, (
        "Where is my order {order}? I placed it {when}.",
        "Can you check on order {order}? It still says processing.",
        "My order {order} hasn't shown up yet. What's going on?",
        "Any update on {order}? I ordered the {product} {when}.",
        "How do I find out where my {product} is? I bought it {when}.",
        "I ordered {when} and have heard nothing since. Is my package on its way?",
    ), (
        ("Orders leave our warehouse within 1-2 business days, and standard delivery takes 3-7 business days after that.",
         "We pack orders within 1-2 business days; standard shipping then takes 3-7 business days.",
         "Most orders ship within 1-2 business days and arrive 3-7 business days later by standard post."),
        ("The tracking link in your shipping email shows the latest scan for {order_ref}.",
         "Your shipping email has a tracking link with the carrier's newest update for {order_ref}.",
         "You can follow {order_ref} from the tracking link in your confirmation email."),
        ("If tracking hasn't moved in 5 business days, reply here and we'll open a carrier claim.",
         "I can't promise a delivery date, but tracking updates as soon as the carrier scans it.",
         "If it looks stuck for a week, let me know and I'll chase the carrier for you."),
    )),
    Intent("cancel_order", "orders", None, (
        "I need to cancel order {order}. I placed it {when}.",
        "Please cancel my {product} order, I changed my mind.",
        "Can I still cancel {order}? I ordered by mistake.",
        "I accidentally ordered two of the {product}. Can you cancel one?",
        "How do I cancel an order I just placed?",
    ), (
        ("Orders can be cancelled within 1 hour of being placed, from the Orders page in your account.",
         "You can cancel an order yourself in your account during the first hour after checkout.",
         "Cancellation is possible for 1 hour after you place an order, using the Cancel button in your account."),
        ("After that it's already being packed, so the easiest route is a free return once it arrives.",
         "Past that hour we can't stop it, but you can send it back free within 30 days of delivery.",
         "If the hour has passed, just return the unused item within 30 days for a full refund."),
    )),
    Intent("change_address", "orders", None, (
        "I typed the wrong street on order {order}. Can you fix the address?",
        "Can I change the shipping address for my {product}? I'm moving {when_future}.",
        "I need order {order} sent to my office instead of my home.",
        "Oops, I used my old address at checkout. Can that be updated?",
    ), (
        ("Addresses can be changed within 1 hour of ordering, from the order page in your account.",
         "You can edit the address yourself in your account for the first hour after checkout.",
         "During the first hour after you order, the address is editable in your account."),
        ("Once {order_ref} has shipped, the carrier's tracking page lets you request a redirect.",
         "After that, use the tracking link to ask the carrier to redirect {order_ref}.",
         "If it's already packed, the carrier can usually reroute {order_ref} from the tracking link."),
    )),
    Intent("damaged_item", "orders", None, (
        "My {product} arrived damaged. The box was crushed.",
        "The {product} from order {order} came with a torn seam right out of the box.",
        "I opened my package {when} and the {product} is broken.",
        "Something in order {order} arrived scratched and dented.",
    ), (
        ("I'm sorry it arrived that way!", "That's not the welcome we wanted for you.", "Sorry about that rough delivery!"),
        ("Reply with a photo and your order number and we'll ship a replacement at no cost.",
         "Send us a photo of the damage plus the order number, and a free replacement goes out right away.",
         "A quick photo and the order number is all we need to send a new one free of charge."),
        ("You don't need to return the damaged one.", "No need to send the damaged item back.",
         "Please recycle the damaged one rather than returning it."),
    )),
    Intent("wrong_item", "orders", None, (
        "I ordered the {product} but got something completely different.",
        "Order {order} has the wrong item in it.",
        "You sent me the wrong color of the {product}.",
        "The box for {order} had someone else's gear inside.",
    ), (
        ("Sorry for the mix-up!", "That's our mistake, and I'm sorry.", "Apologies for the packing slip-up!"),
        ("We'll email a free return label for the wrong item and ship the right {product_ref} today.",
         "A prepaid label for the wrong item is on its way to your inbox, and the correct {product_ref} ships today.",
         "Keep an eye out for a free return label; the right {product_ref} ships as soon as you confirm."),
    )),
    Intent("missing_item", "orders", None, (
        "My package arrived but the {product} wasn't in it.",
        "Order {order} is missing an item.",
        "Only half of my order showed up {when}.",
        "The {product} is listed on my packing slip but it's not in the box.",
    ), (
        ("Orders with several items sometimes ship in separate boxes, so check your email for a second tracking link.",
         "Larger orders can ship in two boxes; your shipping email lists each tracking number.",
         "We sometimes split orders across boxes, and each box gets its own tracking link."),
        ("If nothing else is on the way, reply with {order_ref} and we'll send the missing piece free.",
         "If there's no second box, tell us {order_ref} and the missing item ships at no cost.",
         "No second box? Send me {order_ref} and we'll ship what's missing for free."),
    )),
    Intent("return_request", "returns", None, (
        "How do I return the {product}? It doesn't suit me.",
        "I'd like to send back the {product} I bought {when}.",
        "Can I return an unused {product}?",
        "What's your return policy? I might not keep the {product}.",
        "I want a refund for order {order}. Never used it.",
        "Is it possible to return something I bought {when}?",
    ), (
        ("Unused items can be returned within 30 days of delivery.",
         "You have 30 days from delivery to return unused gear.",
         "Our return window is 30 days from delivery for unused items."),
        ("Start the return from your account and we'll email a free prepaid label.",
         "Open the Returns page in your account to print a free label.",
         "Request it in your account and a prepaid label arrives by email."),
        ("Refunds go back to your original payment method 5-10 business days after the return arrives.",
         "Once it reaches us, the refund lands on your original payment method within 5-10 business days.",
         "Expect the refund on your original payment method 5-10 business days after we receive it."),
    )),
    Intent("return_used", "returns", None, (
        "I wore the {product} on one hike and don't like it. Can I return it?",
        "Can I return the {product} after using it for a weekend?",
        "I used the {product} a few times and it's not for me. Refund?",
        "Do you take returns on gear that's been used outdoors?",
    ), (
        ("Returns are for unused items only, so a used {product_ref} can't come back for a refund.",
         "We can only accept unused items for returns, so I can't refund a used {product_ref}.",
         "Used gear isn't returnable, so a refund on the {product_ref} isn't possible."),
        ("If something failed because of a defect, our 2-year warranty covers repair or replacement.",
         "That said, if it's defective, the 2-year warranty has you covered.",
         "If a flaw caused the problem, send a photo and we'll look at it under the 2-year warranty."),
    )),
    Intent("return_late", "returns", None, (
        "I bought the {product} two months ago. Can I still return it?",
        "It's been 45 days since delivery. Is a return still possible?",
        "I forgot to send back the {product} in time. Any chance you'll take it?",
        "My {product} arrived six weeks ago and it's unopened. Can I return it?",
    ), (
        ("Our return window closes 30 days after delivery, so I can't accept this one as a return.",
         "Returns are limited to 30 days from delivery, so this one is past the window.",
         "Unfortunately the 30-day return window has passed for this order."),
        ("If it develops a manufacturing defect, the 2-year warranty still applies.",
         "The 2-year warranty against manufacturing defects still protects you, though.",
         "You're still covered by our 2-year warranty if a defect shows up."),
    )),
    Intent("refund_timing", "returns", None, (
        "I sent my return back {when}. When will I get my money?",
        "How long do refunds take? My return for {order} was delivered.",
        "Still waiting on a refund for the {product}. What's the timeline?",
        "When does the refund hit my card after you get the return?",
    ), (
        ("Refunds are issued to your original payment method once the return is scanned at our warehouse.",
         "We refund your original payment method as soon as the return is checked in.",
         "As soon as we check in the return, the refund goes to your original payment method."),
        ("It then takes 5-10 business days to appear, depending on your bank.",
         "Banks usually show it within 5-10 business days.",
         "Allow 5-10 business days for your bank to post it."),
        ("You'll get an email the moment we process it.", "We'll email you when the refund is issued.",
         "Watch for a confirmation email when it's processed."),
    )),
    Intent("exchange_size", "returns", "footwear+apparel", (
        "The {product} is too small. Can I swap for a {size}?",
        "Can I exchange my {product} for a bigger size?",
        "I need the {product} one size down. How do exchanges work?",
        "How do I exchange the {product} for a {size}?",
    ), (
        ("Size exchanges are free within 30 days of delivery for unused items.",
         "Exchanging for another size is free as long as the item is unused and within 30 days.",
         "We swap sizes for free on unused items within 30 days of delivery."),
        ("Choose Exchange on the Returns page in your account and the new size ships once your return is scanned.",
         "Pick Exchange in your account's Returns page; the new size goes out when the carrier scans your return.",
         "Start an exchange from your account, and we ship the new size as soon as your parcel is scanned."),
    )),
    Intent("shipping_cost", "shipping", None, (
        "How much is shipping on a {amount} order?",
        "Do you offer free shipping?",
        "Is shipping free if I buy the {product}?",
        "What does standard shipping cost?",
        "What's the minimum for free delivery?",
    ), (
        ("Standard shipping is free on orders over $75.", "Orders over $75 ship free by standard post.",
         "Spend over $75 and standard shipping is on us."),
        ("Below that it's a flat $6.95, and express is $19.", "Smaller orders pay a flat $6.95; express costs $19.",
         "Under $75 it's $6.95 flat, or $19 for express."),
        ("Standard takes 3-7 business days after dispatch.", "Standard arrives 3-7 business days after it ships.",
         "Express arrives 1-2 business days after dispatch."),
    )),
    Intent("delivery_date", "shipping", None, (
        "Will my {product} arrive by Friday?",
        "Can you guarantee delivery before {event}?",
        "If I order the {product} today, will it get here by {event}?",
        "I need order {order} before {event}. Will it make it?",
        "Can you promise the {product} arrives in three days?",
    ), (
        ("I can't promise a delivery date, because the carrier controls the final leg.",
         "I'm not able to guarantee an arrival date once the carrier has the parcel.",
         "We can't promise exact delivery dates, since the timing is in the carrier's hands."),
        ("Express shipping takes 1-2 business days after dispatch and is the fastest option at $19.",
         "Your best bet is express, which takes 1-2 business days after dispatch for $19.",
         "If time is tight, express shipping ($19) arrives 1-2 business days after it ships."),
        ("Orders leave within 1-2 business days.", "We dispatch within 1-2 business days.",
         "Tracking will show the estimate once it ships."),
    )),
    Intent("international", "shipping", None, (
        "Do you ship to {country}?",
        "Can I get the {product} delivered to {country}?",
        "Is international shipping available? I live in {country}.",
        "I'm visiting {country} next month. Can you send an order there?",
    ), (
        ("Right now we only ship within the US and Canada.", "We currently deliver to US and Canadian addresses only.",
         "Our shipping covers the US and Canada only for now."),
        ("A US or Canadian address, like a friend's, works fine for the order.",
         "If you have a US or Canadian address, we can send it there.",
         "We'd be glad to ship to any address in either country."),
    )),
    Intent("tracking_stuck", "shipping", None, (
        "My tracking for {order} hasn't updated in days.",
        "Tracking says delivered but I don't have my {product}.",
        "The tracking link for my order doesn't work.",
        "My package has been in transit for a week with no updates.",
    ), (
        ("Carriers sometimes skip scans, so it may still be moving.", "Tracking can lag behind the parcel by a day or two.",
         "Sometimes a parcel moves without a new scan for a bit."),
        ("If there's no update within 5 business days, reply here and we'll open a claim and send a replacement.",
         "Give it 5 business days; if nothing changes, we'll file a carrier claim and reship.",
         "If it's still quiet after 5 business days, tell us and we'll replace it while we chase the carrier."),
    )),
    Intent("boot_sizing", "sizing", "footwear", (
        "I wear a {shoe} in most brands. What size {product} should I get?",
        "Does the {product} run true to size?",
        "Should I size up in the {product}?",
        "What size in the {product} if I'm normally a {shoe}?",
        "Is the {product} narrow, or does it fit like a regular shoe?",
    ), (
        ("Our footwear runs about half a size small.", "Fernhollow footwear tends to run half a size small.",
         "Our shoes and boots fit roughly half a size small."),
        ("We suggest ordering half a size up from your usual size{size_advice}.",
         "Going half a size up from your normal size works best{size_advice}.",
         "Most people are happiest half a size up{size_advice}."),
        ("If the fit's off, size exchanges are free within 30 days.", "Exchanges for another size are free if it isn't right.",
         "And if it's not right, swapping sizes is free."),
    )),
    Intent("apparel_sizing", "sizing", "apparel", (
        "Does the {product} run big or small?",
        "I'm between a medium and a large. Which {product} size should I pick?",
        "How does the {product} fit? Is it roomy enough for layers?",
        "What size {product} should I buy? I'm {height} tall.",
    ), (
        ("Our apparel is true to size.", "Fernhollow clothing fits true to size.", "Our clothing runs true to size."),
        ("The size chart on each product page lists chest and waist measurements.",
         "Each product page has a size chart with measurements to compare.",
         "Check the size chart on the product page for exact measurements."),
        ("If you're between sizes or layering, pick the larger one.", "Between sizes, most people go up for layering room.",
         "For room over layers, choose the bigger size."),
    )),
    Intent("sleeping_bag_length", "sizing", "sleeping_bag", (
        "I'm {height}. Do I need the long {product}?",
        "What length {product} should I get if I'm {height} tall?",
        "Will the regular {product} fit someone who's {height}?",
        "How tall can you be for the regular {product}?",
    ), (
        ("Regular sleeping bags fit people up to 6 ft, and long ones fit up to 6 ft 6 in.",
         "The regular length fits up to 6 ft; the long fits up to 6 ft 6 in.",
         "Regular bags suit sleepers up to 6 ft, while long bags go up to 6 ft 6 in."),
        ("If you're close to the limit, the long gives your feet room to stay warm.",
         "Near the cutoff, go long so your feet don't compress the insulation.",
         "When in doubt, the long version keeps your toes from pressing the footbox."),
    )),
    Intent("warranty_defect", "warranty", None, (
        "The zipper on my {product} broke after a month.",
        "A seam on my {product} split on the second trip. Is that covered?",
        "My {product} stopped working. Do you have a warranty?",
        "Is there a warranty on the {product}?",
        "The buckle on my {product} snapped {when}. What can you do?",
    ), (
        ("Everything we sell has a 2-year warranty against manufacturing defects.",
         "Our 2-year warranty covers manufacturing defects on all gear.",
         "Gear from us carries a 2-year warranty on manufacturing defects."),
        ("Reply with a photo and your order number and we'll repair or replace it.",
         "Send a photo plus the order number and we'll repair it or send a replacement.",
         "Share a photo and the order number, and we'll fix or replace it."),
        ("Normal wear and accidents aren't covered.", "Wear and tear or accidental damage fall outside it.",
         "It doesn't cover everyday wear or accidents."),
    )),
    Intent("warranty_wear", "warranty", None, (
        "My {product} is worn out after three years of use. Can I get a new one?",
        "I tore my {product} on a branch. Will the warranty cover it?",
        "My dog chewed the {product}. Is that a warranty thing?",
        "The soles on my {product} wore down after a lot of miles. Covered?",
    ), (
        ("Our 2-year warranty covers manufacturing defects, not wear and tear or accidents.",
         "The warranty is for manufacturing defects only, so wear and accidental damage aren't included.",
         "Accidents and normal wear fall outside our 2-year defect warranty."),
        ("Many local gear shops do great repairs, and we're happy to suggest what to ask for.",
         "A local repair shop can often patch it for a small fee.",
         "A repair shop can usually give it a second life."),
    )),
    Intent("password_reset", "account", None, (
        "I forgot my password.",
        "I can't log in to my account.",
        "How do I reset my password?",
        "The site says my password is wrong but I'm sure it's right.",
    ), (
        ("Tap Forgot password on the sign-in page and we'll email you a reset link.",
         "Use the Forgot password link on the sign-in page to get a reset email.",
         "Choose Forgot password when signing in and a reset link lands in your inbox."),
        ("The link works for 1 hour, so check spam if it doesn't show up.", "It expires after 1 hour, and spam folders sometimes catch it.",
         "Use it within an hour, and peek in spam if you don't see it."),
    )),
    Intent("change_email", "account", None, (
        "How do I change the email on my account?",
        "Can you update my account email for me?",
        "I have a new email address. Where do I change it?",
        "My old email no longer works. Can you switch it?",
    ), (
        ("For security, we can't change account details from chat.", "To keep your account safe, we don't edit emails from chat.",
         "For your protection, email changes can't be made through support."),
        ("Go to Account Settings, choose Email, and confirm the new address from the link we send.",
         "Open Account Settings and update it there; we'll send a confirmation link to the new address.",
         "Update it under Account Settings, then confirm from the email we send."),
    )),
    Intent("delete_account", "account", None, (
        "Please delete my account.",
        "How do I close my Fernhollow account?",
        "I want all my data removed from your site.",
        "Can I remove my account and order history?",
    ), (
        ("You can request deletion under Account Settings, then Privacy.", "Choose Delete account under Account Settings, then Privacy.",
         "The Privacy section of Account Settings has a Delete account option."),
        ("We complete it within 30 days and email you when it's done.", "It's finished within 30 days, with an email to confirm.",
         "Deletion finishes within 30 days and you'll get a confirmation email."),
    )),
    Intent("unsubscribe", "account", None, (
        "Stop sending me marketing emails.",
        "How do I unsubscribe from your newsletter?",
        "I'm getting too many promo emails from you.",
        "Can you take me off the mailing list?",
    ), (
        ("Every newsletter has an Unsubscribe link at the bottom.", "There's an Unsubscribe link at the foot of each email.",
         "Use the Unsubscribe link at the bottom of any of our emails."),
        ("It takes effect within 2 business days, and order emails still arrive.",
         "Allow 2 business days; you'll still get order and shipping updates.",
         "Order updates keep coming, but promos stop within 2 business days."),
    )),
    Intent("guest_checkout", "account", None, (
        "Do I need an account to buy the {product}?",
        "Can I check out as a guest?",
        "I don't want to make yet another account. Can I still order?",
        "Is signing up required before ordering?",
        "What do I get from creating an account?",
    ), (
        ("No account needed, guest checkout works for every order.", "You can absolutely check out as a guest.",
         "Guest checkout is always available."),
        ("An account just keeps your orders, tracking and returns in one place.",
         "With an account you can track orders and start returns without digging through emails.",
         "Signing up only adds order history and one-click returns."),
        ("You can create one later with the same email and past orders appear.",
         "If you sign up later with that email, earlier orders show up automatically.",
         "Guest orders link to an account if you register later with the same email."),
    )),
    Intent("saved_address", "account", None, (
        "How do I update the address saved in my profile?",
        "I moved {when}. Where do I change my default address?",
        "Can I store more than one shipping address?",
        "My account still shows my old apartment. How do I fix it?",
    ), (
        ("Saved addresses live under Account Settings, then Addresses.", "Open Account Settings and pick Addresses to edit them.",
         "You'll find saved addresses in Account Settings under Addresses."),
        ("You can keep several and mark one as the default.", "Add as many as you like and star your default.",
         "Store a few and choose which one is the default."),
        ("Orders already placed keep their address unless changed within 1 hour.",
         "Existing orders aren't updated; those can only be edited in the first hour.",
         "This won't change orders you've already placed after their first hour."),
    )),
    Intent("order_history", "account", None, (
        "Where can I find a receipt for order {order}?",
        "I need an invoice for the {product} for my expense report.",
        "How do I see my past orders?",
        "Can you resend the receipt for my {product}?",
        "Where's my order history?",
    ), (
        ("Every order, including {order_ref}, is listed on the Orders page of your account.",
         "Your account's Orders page lists all purchases, {order_ref} included.",
         "All your purchases, like {order_ref}, sit on the Orders page in your account."),
        ("Each one has a Download receipt button that gives you a PDF invoice.",
         "Open it and choose Download receipt for a PDF copy.",
         "The Download receipt link there saves a PDF with tax details."),
        ("Guest orders can be found by signing up with the same email.",
         "If you checked out as a guest, register with that email to see it.",
         "Guest purchases appear once you create an account with the same email."),
    )),
    Intent("payment_methods", "payment", None, (
        "What payment methods do you accept?",
        "Can I pay with PayPal?",
        "Do you take Amex?",
        "Can I pay cash on delivery for the {product}?",
        "Do you accept crypto?",
    ), (
        ("We accept Visa, Mastercard, Amex, Discover, PayPal and Fernhollow gift cards.",
         "You can pay with Visa, Mastercard, Amex, Discover, PayPal or a Fernhollow gift card.",
         "Checkout takes Visa, Mastercard, Amex, Discover, PayPal and our gift cards."),
        ("We don't offer cash on delivery or crypto.", "Cash on delivery and cryptocurrency aren't available.",
         "We can't take cash on delivery or crypto payments."),
    )),
    Intent("card_declined", "payment", None, (
        "My card keeps getting declined at checkout.",
        "Why was my payment rejected for the {product}?",
        "Checkout fails every time I try to pay.",
        "My card works everywhere except your site.",
    ), (
        ("Please don't share card numbers here; we never need them in chat.",
         "No need to send any card details here, and please don't.",
         "For safety, keep card numbers out of chat."),
        ("Check that the billing address matches your bank's records, or try PayPal.",
         "A mismatched billing address is the usual cause, and PayPal is a handy backup.",
         "Most declines come from the billing address not matching the bank; PayPal also works."),
    )),
    Intent("charged_twice", "payment", None, (
        "I was charged twice for order {order}.",
        "My bank shows two payments for the {product}.",
        "Why is there a second pending charge on my card?",
        "I see a duplicate charge from Fernhollow.",
    ), (
        ("A second pending charge is usually an authorization hold that drops off in 3-5 business days.",
         "Often it's an authorization hold, and it disappears within 3-5 business days.",
         "Usually it's a temporary hold that clears in 3-5 business days."),
        ("If both charges post, reply with {order_ref} and we'll refund the extra one.",
         "If both go through, send {order_ref} and we'll refund the duplicate.",
         "Should both settle, tell us {order_ref} and the extra is refunded."),
    )),
    Intent("price_drop", "payment", None, (
        "The {product} went on sale right after I bought it.",
        "Do you price match? I saw the {product} cheaper elsewhere.",
        "I paid full price {when} and now it's discounted. Can I get the difference?",
        "Will you match another store's price on the {product}?",
    ), (
        ("We don't price match other stores.", "We aren't able to match other retailers' prices.",
         "Price matching with other shops isn't something we do."),
        ("If our own price drops within 14 days of your purchase, we refund the difference.",
         "But if our price falls within 14 days of your order, you get the difference back.",
         "If our price drops within 14 days after you buy, we refund the gap."),
        ("Just reply with your order number.", "Send the order number and we'll handle it.",
         "Share the order number to claim it."),
    )),
    Intent("gift_card", "payment", None, (
        "Do gift cards expire?",
        "How do I check my Fernhollow gift card balance?",
        "Can I use two gift cards on one order?",
        "Can I buy the {product} with a gift card and my credit card?",
    ), (
        ("Fernhollow gift cards never expire.", "Our gift cards don't expire.", "Gift cards from us have no expiry date."),
        ("You can combine up to two gift cards with a card or PayPal at checkout, and the balance shows there too.",
         "Checkout shows the balance and lets you pair up to two gift cards with another payment method.",
         "At checkout you can check the balance and split the total across two gift cards and a card."),
    )),
]

SLOT_VALUES = {
    "when_future": ["next week", "at the end of the month", "on Saturday", "soon"],
    "event": ["my trip on Saturday", "the long weekend", "next Friday", "my hike on Sunday", "Christmas",
              "my birthday", "my camping trip", "the 15th"],
    "country": ["the UK", "Germany", "Australia", "Mexico", "Japan", "France", "Ireland", "Brazil"],
    "shoe": ["size 9", "size 10", "size 8.5", "size 11", "size 7", "women's 8", "men's 10.5"],
    "size": ["size 10", "large", "medium", "size 9.5", "small", "size 11"],
    "height": ["5 ft 11", "6 ft 2", "5 ft 6", "6 ft 4", "5 ft 9", "6 ft"],
    "amount": ["$40", "$60", "$90", "$120", "$55", "$80"],
}


def half_size_up(shoe: str) -> str:
    """'size 9' -> 'size 9.5', "men's 10.5" -> "men's 11"."""
    label, number = shoe.rsplit(" ", 1)
    bigger = float(number) + 0.5
    return f"{label} {bigger:g}"


def order_number(rng: random.Random) -> str:
    return f"FH-{rng.randrange(10000, 100000)}"


def product_for(intent: Intent, rng: random.Random) -> str:
    if intent.category is None:
        return rng.choice(ALL_PRODUCTS)
    names = [name for category in intent.category.split("+") for name in PRODUCTS[category]]
    return rng.choice(names)


def support_reply(body: str) -> str:
    return f"{GREETING} {body} {SIGN_OFF}"


def support_record(user: str, assistant: str) -> dict:
    return {"messages": [
        {"role": "system", "content": SUPPORT_SYSTEM},
        {"role": "user", "content": user},
        {"role": "assistant", "content": assistant},
    ]}


def support_exchange(rng: random.Random, intent: Intent | None = None) -> tuple[Intent, str, str]:
    """One (intent, user message, assistant reply) drawn from the templates."""
    intent = intent or rng.choice(INTENTS)
    template = rng.choice(intent.users)
    slots = {name: rng.choice(values) for name, values in SLOT_VALUES.items()}
    slots["order"] = order_number(rng)
    slots["product"] = product_for(intent, rng)
    slots["when"] = rng.choice(WHEN)
    # The reply may only name what the customer named: otherwise it would invent an order number.
    slots["order_ref"] = slots["order"] if "{order}" in template else "your order"
    slots["product_ref"] = slots["product"] if "{product}" in template else "item"
    slots["size_advice"] = f", so a {half_size_up(slots['shoe'])}" if "{shoe}" in template else ""
    opener, core = rng.choice(OPENERS), template.format(**slots)
    if opener.endswith(", ") and not re.match(r"I\b", core):
        core = core[0].lower() + core[1:]
    user = opener + core + rng.choice(CLOSERS)
    body = " ".join(rng.choice(variants).format(**slots) for variants in intent.body)
    return intent, user, body


def make_support_example(rng: random.Random, topic: str | None = None) -> tuple[dict, str]:
    intent = rng.choice([i for i in INTENTS if topic in (None, i.topic)])
    intent, user, body = support_exchange(rng, intent)
    return support_record(user, support_reply(body)), intent.topic


TOPICS = sorted({intent.topic for intent in INTENTS})


# ---------------------------------------------------------------------------------------------
# Support: personal data, planted in training conversations only.
# Values are fictional: Luhn-valid card numbers from the card networks' published test ranges,
# phone numbers from the reserved 555-01xx block, IPs from documentation ranges (RFC 5737),
# the IBAN from the ISO 13616 documentation example, emails on example.* domains.

PII_CONVERSATIONS = [
    # (entity types in the user message, entity types echoed by the reply, user, reply body)
    (["EMAIL_ADDRESS"], ["EMAIL_ADDRESS"],
     "Hi, I need a return label for the Sedge rain shell. My email is maya.okafor@example.com.",
     "Unused items can be returned within 30 days of delivery. I've sent a free prepaid label to "
     "maya.okafor@example.com, and your refund follows 5-10 business days after it arrives."),
    (["EMAIL_ADDRESS"], [],
     "Can you look up my order? It's under maya.okafor@example.com and I ordered the Larch 45L pack last week.",
     "Your shipping email has a tracking link with the newest scan for the Larch 45L pack. Orders "
     "leave within 1-2 business days and standard delivery takes 3-7 business days."),
    (["EMAIL_ADDRESS", "EMAIL_ADDRESS"], [],
     "Please change my account email from dev.patel@example.net to devpatel.hikes@example.org.",
     "For security, we can't change account details from chat. Go to Account Settings, choose Email, "
     "and confirm the new address from the link we send."),
    (["PHONE_NUMBER"], ["PHONE_NUMBER"],
     "My Cinderpeak 2 tent pole snapped on the first night. Can someone call me at (415) 555-0132?",
     "Our 2-year warranty covers manufacturing defects like that. We'll call you at (415) 555-0132 "
     "today; please have a photo and your order number ready."),
    (["PHONE_NUMBER"], [],
     "The courier needs a phone number for order FH-58213, it's 212-555-0178.",
     "Thanks, the carrier will use the number on the order for delivery questions. Tracking in your "
     "shipping email shows each new scan for FH-58213."),
    (["PHONE_NUMBER", "EMAIL_ADDRESS"], ["EMAIL_ADDRESS"],
     "I'm in Toronto, reach me on +1 416 555 0199 or at lena.brandt@example.com about my Alder down jacket exchange.",
     "Size exchanges are free within 30 days for unused items. I've emailed the exchange steps to "
     "lena.brandt@example.com, and the new size ships once your return is scanned."),
    (["CREDIT_CARD"], [],
     "My card 4111 1111 1111 1111 keeps getting declined when I buy the Pika headlamp.",
     "Please don't share card numbers here; we never need them in chat. Check that the billing "
     "address matches your bank's records, or try PayPal."),
    (["CREDIT_CARD"], [],
     "I was charged twice on 5555-5555-5555-4444 for the Brook camp stove.",
     "Please keep card numbers out of chat. A second pending charge is usually an authorization hold "
     "that drops off in 3-5 business days; if both post, we'll refund the extra one."),
    (["CREDIT_CARD", "EMAIL_ADDRESS"], ["EMAIL_ADDRESS"],
     "Refund my Kestrel trekking pole set to Amex 378282246310005 please, and send the receipt to sam.rivera@example.com.",
     "Refunds always go back to the original payment method, so there's nothing to enter here. The "
     "receipt will go to sam.rivera@example.com once the return arrives."),
    (["CREDIT_CARD"], [],
     "Can I update the card on order FH-71930 to 6011111111111117?",
     "Please don't send card numbers in chat. Payment can't be changed after checkout, but within 1 "
     "hour of ordering you can cancel FH-71930 and order again with the new card."),
    (["IBAN_CODE"], [],
     "Could you refund the Juniper 65L pack straight to my bank, IBAN GB82 WEST 1234 5698 7654 32?",
     "Refunds go to the original payment method only, so we can't send money to a bank account. "
     "It arrives 5-10 business days after we receive your return."),
    (["IBAN_CODE", "PHONE_NUMBER"], [],
     "Wire the refund to DE89 3704 0044 0532 0130 00 and text me at 312-555-0146 when it's done.",
     "We can only refund the original payment method, never a bank transfer. You'll get an email as "
     "soon as the refund is issued, usually 5-10 business days after the return arrives."),
    (["IP_ADDRESS"], ["IP_ADDRESS"],
     "Your site keeps blocking me. My IP is 203.0.113.47 and I can't log in.",
     "Sorry about that! I've cleared the sign-in block on 203.0.113.47. If it happens again, use "
     "Forgot password on the sign-in page to get a reset link."),
    (["IP_ADDRESS", "EMAIL_ADDRESS"], [],
     "Someone logged into my account from 198.51.100.23, not me! My email is j.nakamura@example.com.",
     "Please reset your password now with Forgot password on the sign-in page. We've signed out every "
     "session on your account, including the one from that address."),
]

PII_PATTERNS = {  # used only to locate planted values for the manifest
    "EMAIL_ADDRESS": r"[\w.+-]+@[\w-]+\.[\w.]+\w",
    "PHONE_NUMBER": r"(?:\+1 )?(?:\(\d{3}\) |\d{3}[- ])555[- ]01\d\d",
    "CREDIT_CARD": r"\b(?:\d[ -]?){13,19}\b",
    "IBAN_CODE": r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?\b",
    "IP_ADDRESS": r"\b(?:\d{1,3}\.){3}\d{1,3}\b",
}


def find_pii(text: str, entity: str) -> list[str]:
    return [match.strip() for match in re.findall(PII_PATTERNS[entity], text)]


# ---------------------------------------------------------------------------------------------
# Support: planted duplicates.

NEAR_DUPLICATE_SWAPS = [  # (word, replacement): one or two per planted near duplicate
    ("order", "purchase"), ("Hi", "Hello"), ("Thanks", "Thank you"), ("my", "our"), ("the", "this"),
    ("can", "could"), ("still", "yet"), ("need", "want"), ("is", "seems"), ("I", "we"),
]


def verbatim_variant(record: dict, rng: random.Random) -> tuple[dict, str]:
    return json.loads(json.dumps(record)), "verbatim copy"


def case_variant(record: dict, rng: random.Random) -> tuple[dict, str]:
    copy = json.loads(json.dumps(record))
    user = copy["messages"][1]
    user["content"] = user["content"].lower() if rng.random() < 0.5 else user["content"].upper()
    return copy, "user message in different letter case"


def whitespace_variant(record: dict, rng: random.Random) -> tuple[dict, str]:
    copy = json.loads(json.dumps(record))
    user = copy["messages"][1]
    tokens = user["content"].split(" ")
    gap = rng.randrange(1, len(tokens))
    user["content"] = " ".join(tokens[:gap]) + "   " + " ".join(tokens[gap:])
    return copy, "extra spaces inside the user message"


def near_duplicate(record: dict, rng: random.Random, others: list[dict]) -> tuple[dict, str] | None:
    """The record with one or two words of its user message swapped: at least
    PLANTED_NEAR_DUPLICATE_MIN similar to the record and below the accidental limit to all others.
    None when no swap fits."""
    user = record["messages"][1]["content"]
    fitting = [(old, new) for old, new in NEAR_DUPLICATE_SWAPS if re.search(rf"\b{old}\b", user)]
    rng.shuffle(fitting)
    original_grams = shingles(record_text(record))
    for count in (rng.choice([1, 2]), 1):
        if len(fitting) < count:
            continue
        chosen = fitting[:count]
        changed = user
        for old, new in chosen:
            changed = re.sub(rf"\b{old}\b", new, changed, count=1)
        copy = json.loads(json.dumps(record))
        copy["messages"][1]["content"] = changed
        grams = shingles(record_text(copy))
        if jaccard(grams, original_grams) < PLANTED_NEAR_DUPLICATE_MIN:
            continue
        if any(jaccard(grams, shingles(record_text(other))) >= ACCIDENTAL_SIMILARITY_LIMIT
               for other in others if other is not record):
            continue
        return copy, "user message: " + ", ".join(f"'{old}' -> '{new}'" for old, new in chosen)
    return None


# ---------------------------------------------------------------------------------------------
# Support: assembling train and validation.

SUPPORT_COUNTS = {"unique_train": 280, "validation": 40, "exact_duplicates": 10, "near_duplicates": 10}

QUESTIONS = [  # unseen: none is a template phrasing; the test checks they resemble no example
    {"topic": "returns",
     "content": "I got the Hollowcrest 4 tent for my family three weeks ago but we never set it up. "
                "Am I still able to send it back?",
     "policy": "unused, within 30 days: returnable with a free label; refund 5-10 business days after it arrives"},
    {"topic": "shipping",
     "content": "If I place an order tonight, will it reach me in time for a camping trip next Friday?",
     "policy": "no delivery date promised; express is 1-2 business days after dispatch for $19"},
    {"topic": "sizing",
     "content": "My everyday sneakers are a 10. Which size of the Scree hiking boot would you recommend?",
     "policy": "footwear runs half a size small: suggest 10.5; size exchanges are free"},
    {"topic": "warranty",
     "content": "After four months the shoulder strap stitching on my Ptarmigan 28L daypack is coming apart. "
                "What are my options?",
     "policy": "2-year warranty on manufacturing defects: photo and order number, repair or replacement"},
    {"topic": "payment",
     "content": "Would a $60 basket ship for free, and is PayPal an option at checkout?",
     "policy": "free standard shipping only over $75, so $6.95; PayPal accepted"},
]


@dataclass
class SupportSet:
    train: list[dict]
    validation: list[dict]
    manifest: dict  # the planted flaws, as written to planted.json
    train_topics: list[str]  # aligned with train
    validation_topics: list[str]


def build_support(rng: random.Random) -> SupportSet:
    train_pool = DistinctPool()
    for user_types, reply_types, user, body in PII_CONVERSATIONS:
        if not train_pool.offer(support_record(user, support_reply(body)), "personal data"):
            raise RuntimeError(f"planted PII conversation resembles another one: {user!r}")
    pii_records = list(train_pool.records)
    fill_pool(train_pool, make_support_example, SUPPORT_COUNTS["unique_train"] - len(pii_records), rng,
              "support train")
    question_pool = DistinctPool(against=train_pool)
    for question in QUESTIONS:
        if not question_pool.offer(support_record(question["content"], "")):
            raise RuntimeError(f"a demo question resembles a training example: {question['content']!r}")
    validation_pool = DistinctPool(against=question_pool)
    for index, topic in enumerate(TOPICS):  # every topic held out, in near-equal shares
        share = SUPPORT_COUNTS["validation"] // len(TOPICS) + (index < SUPPORT_COUNTS["validation"] % len(TOPICS))
        fill_pool(validation_pool, lambda r, t=topic: make_support_example(r, t), share, rng,
                  f"support validation ({topic})")
    validation = validation_pool.records

    topic_of = {id(record): tag for record, tag in zip(train_pool.records, train_pool.tags)}
    unique = list(train_pool.records)
    rng.shuffle(unique)
    originals = rng.sample([r for r in unique if not any(r is p for p in pii_records)],
                           SUPPORT_COUNTS["exact_duplicates"] + SUPPORT_COUNTS["near_duplicates"])
    exact_sources = originals[:SUPPORT_COUNTS["exact_duplicates"]]
    near_sources = originals[SUPPORT_COUNTS["exact_duplicates"]:]

    plants = []  # (copy, original, kind, description)
    for index, original in enumerate(exact_sources):
        make_variant = (verbatim_variant, case_variant, whitespace_variant)[index % 3]
        copy, what = make_variant(original, rng)
        plants.append((copy, original, "exact", what))
    spare = [r for r in unique if all(r is not o for o in originals) and all(r is not p for p in pii_records)]
    for original in near_sources:
        variant = near_duplicate(original, rng, unique)
        while variant is None:  # no fitting swap: take a source nobody else uses
            original = spare.pop(rng.randrange(len(spare)))
            variant = near_duplicate(original, rng, unique)
        plants.append((variant[0], original, "near", variant[1]))

    train = list(unique)
    for copy, original, _, _ in plants:  # each copy lands somewhere after its original
        after = next(i for i, r in enumerate(train) if r is original)
        train.insert(rng.randrange(after + 1, len(train) + 1), copy)
        topic_of[id(copy)] = topic_of[id(original)]
    planted_pairs = {(id(copy), id(original)) for copy, original, _, _ in plants}
    grams = [shingles(record_text(record)) for record in train]
    for i in range(len(train)):
        for j in range(i + 1, len(train)):
            pair = {(id(train[i]), id(train[j])), (id(train[j]), id(train[i]))}
            if not pair & planted_pairs and jaccard(grams[i], grams[j]) >= ACCIDENTAL_SIMILARITY_LIMIT:
                raise RuntimeError(f"support train lines {i + 1} and {j + 1} are accidental near duplicates")

    def line_of(record: dict) -> int:
        return next(i for i, r in enumerate(train) if r is record) + 1

    manifest = {
        "similarity": {
            "measure": "Jaccard of word 3-gram sets over all message contents (lowercased, words = [a-z0-9]+)",
            "near_duplicates_at_least": PLANTED_NEAR_DUPLICATE_MIN,
            "all_other_pairs_below": ACCIDENTAL_SIMILARITY_LIMIT,
        },
        "exact_duplicates": sorted(
            ({"line": line_of(copy), "duplicate_of": line_of(original), "variant": what}
             for copy, original, kind, what in plants if kind == "exact"), key=lambda e: e["line"]),
        "near_duplicates": sorted(
            ({"line": line_of(copy), "near_duplicate_of": line_of(original), "change": what,
              "similarity": round(jaccard(shingles(record_text(copy)), shingles(record_text(original))), 3)}
             for copy, original, kind, what in plants if kind == "near"), key=lambda e: e["line"]),
        "pii": [],
    }
    for record, (user_types, reply_types, _, _) in zip(pii_records, PII_CONVERSATIONS):
        user_text = record["messages"][1]["content"]
        reply_text = record["messages"][2]["content"]
        for entity in sorted(set(user_types)):
            for value in find_pii(user_text, entity):
                manifest["pii"].append({"line": line_of(record), "entity": entity, "value": value,
                                        "in_user": True, "echoed_by_assistant": value in reply_text})
        if set(reply_types) - set(user_types):
            raise RuntimeError(f"line {line_of(record)}: the reply echoes personal data the user never gave")
    manifest["pii"].sort(key=lambda e: (e["line"], e["entity"], e["value"]))
    for user_types, _, user, _ in PII_CONVERSATIONS:
        found = sum(len(find_pii(user, e)) for e in set(user_types))
        if found != len(user_types):
            raise RuntimeError(f"expected {len(user_types)} planted values, located {found}: {user!r}")
    return SupportSet(train, validation, manifest, [topic_of[id(record)] for record in train],
                      list(validation_pool.tags))


# ---------------------------------------------------------------------------------------------
# JSON extraction: customer message -> {"product", "issue", "urgency"}.

ISSUES = {
    "damaged": ["arrived with a crushed corner", "showed up cracked", "came with a big tear in it",
                "was dented when I opened the box", "arrived with a broken clip"],
    "defective": ["stopped working after two uses", "has a zipper that won't close", "leaks at the seams",
                  "won't hold a charge", "lost a buckle the first day out", "started peeling on the first hike"],
    "wrong_item": ["turned out to be a different model than I ordered", "came in the wrong color",
                   "wasn't what I ordered at all", "is the kids' version, not the adult one"],
    "wrong_size": ["is a full size too small", "fits way too big", "is too short in the sleeves",
                   "pinches my toes even with thin socks", "is a size larger than the one I picked"],
    "late": ["still hasn't arrived after two weeks", "is stuck in transit", "is days past the estimate",
             "never showed up even though tracking says delivered"],
    "missing_part": ["came without its stuff sack", "is missing one of the poles", "had no charging cable in the box",
                     "arrived without the fuel canister adapter", "was missing the rain fly"],
    "billing": ["was charged to my card twice", "cost more than the price at checkout",
                "shows a charge even though I cancelled it", "was billed with shipping even though it was over $75"],
}
URGENCY_CUES = {
    "high": ["I leave for a trip on Saturday and need this sorted ASAP.", "This is urgent, please help today.",
             "I need it fixed before my hike this weekend.", "Please hurry, my expedition starts Monday.",
             "Urgent: I'm flying out tomorrow morning."],
    "medium": ["", "Could you look into it this week?", "Let me know what you can do.",
               "What are my options?", "Please advise."],
    "low": ["No rush at all.", "Whenever you get a chance.", "Not urgent, just wanted to flag it.",
            "Take your time, I won't need it until spring.", "No hurry, it can wait."],
}
EXTRACTION_SYSTEM = ('Extract the support ticket as JSON only: {"product": catalogue name or null, '
                     '"issue": one of damaged, defective, wrong_item, wrong_size, late, missing_part, billing, '
                     '"urgency": low, medium or high}.')
EXTRACTION_FRAMES = [
    "{opener}The {product_mention} I bought {when} {issue}. {cue}",
    "{opener}My {product_mention} {issue}. {cue}",
    "{opener}Order {order}: the {product_mention} {issue}. {cue}",
    "{opener}Just so you know, the {product_mention} {issue}. {cue}",
    "{opener}{cue} The {product_mention} from order {order} {issue}.",
]
EXTRACTION_FRAMES_NO_PRODUCT = [
    "{opener}My order {order} {issue}. {cue}",
    "{opener}The package I ordered {when} {issue}. {cue}",
    "{opener}Everything I got from you {when} {issue}. {cue}",
]
NO_PRODUCT_ISSUES = ["late", "billing", "damaged", "wrong_item"]


def make_extraction_example(rng: random.Random, urgency: str) -> tuple[dict, str]:
    with_product = rng.random() < 0.85
    issue = rng.choice(list(ISSUES) if with_product else NO_PRODUCT_ISSUES)
    product = rng.choice(ALL_PRODUCTS) if with_product else None
    # Customers rarely type catalogue names exactly; the answer still uses the catalogue name.
    mention = product and (product if rng.random() < 0.6 else product.lower())
    frame = rng.choice(EXTRACTION_FRAMES if with_product else EXTRACTION_FRAMES_NO_PRODUCT)
    message = frame.format(opener=rng.choice(OPENERS), product_mention=mention, when=rng.choice(WHEN),
                           issue=rng.choice(ISSUES[issue]), cue=rng.choice(URGENCY_CUES[urgency]),
                           order=order_number(rng))
    message = " ".join(message.split())
    answer = json.dumps({"product": product, "issue": issue, "urgency": urgency}, separators=(",", ":"))
    return {"messages": [
        {"role": "system", "content": EXTRACTION_SYSTEM},
        {"role": "user", "content": message},
        {"role": "assistant", "content": answer},
    ]}, issue


EXTRACTION_COUNTS = {"train": 200, "validation": 30}
URGENCY_SHARES = {"low": 0.3, "medium": 0.4, "high": 0.3}


def build_extraction(rng: random.Random) -> tuple[list[dict], list[dict]]:
    train_pool = DistinctPool()
    splits = []
    for split, pool in (("train", train_pool), ("validation", DistinctPool(against=train_pool))):
        count = EXTRACTION_COUNTS[split]
        quotas = {level: round(count * share) for level, share in URGENCY_SHARES.items()}
        quotas["medium"] += count - sum(quotas.values())
        for level, quota in quotas.items():
            fill_pool(pool, lambda r, u=level: make_extraction_example(r, u), quota, rng, f"extraction {split} ({level})")
        splits.append(rng.sample(pool.records, len(pool.records)))  # urgencies interleaved
    return splits[0], splits[1]


# ---------------------------------------------------------------------------------------------
# Preference (DPO): concise on-policy brand-voice replies preferred over rambling or off-policy ones.

RAMBLE_OPENINGS = [
    "Thank you so much for reaching out to us today, we really value you as a customer and we "
    "understand how important this is to you.",
    "Great question! There are a lot of different factors that can come into play here, so let me "
    "try to walk you through some of the general considerations.",
    "I completely understand your concern, and I want to start by saying that every situation is a "
    "little bit different, so it can be hard to give a single answer.",
    "Thanks for your message! Before I answer, it's worth mentioning that policies like these can "
    "vary quite a bit between retailers and even between products.",
    "Hello and thanks for getting in touch, it's always nice to hear from people who love the outdoors "
    "as much as we do.",
    "Oh, that's a really interesting one, and honestly it's something a lot of people wonder about.",
]
RAMBLE_HOOKS = {
    "orders": ["orders can be a bit complicated", "what happens to an order after checkout varies",
               "order questions depend on the warehouse"],
    "returns": ["sending things back is a process with several steps", "returns depend on many details",
                "refunds and returns have their own rules"],
    "shipping": ["shipping depends on the carrier, the weather and the season", "delivery times are hard to predict",
                 "parcels take their own route"],
    "sizing": ["fit is very personal and everyone's feet and shoulders are different",
               "sizing is one of the trickiest parts of buying gear online", "sizes vary from brand to brand"],
    "warranty": ["warranties cover some things and not others", "what counts as a defect can be a grey area",
                 "gear wears out in all sorts of ways"],
    "account": ["accounts and settings can be confusing", "website settings change from time to time",
                "logins and profiles have a few moving parts"],
    "payment": ["payments involve the bank, the card network and us", "billing is a complex area",
                "payment options change now and then"],
}
RAMBLE_HOOK_FRAMES = ["As you probably know, {hook}.", "The thing is, {hook}.", "To be honest, {hook}.",
                      "It's important to remember that {hook}."]
RAMBLE_MIDDLES = [
    "In many cases it might be possible, although it really depends on a number of things such as "
    "timing, the condition of the item and what the team decides when they look at it.",
    "Generally speaking, most customers find that things work out in the end, but there can be "
    "exceptions, and sometimes it takes a little longer than anyone would like.",
    "You may want to check the website, your email, your account and possibly your bank as well, "
    "since any of those could have more information that might be relevant.",
    "It could be worth waiting a few days to see whether the situation resolves itself, and if not, "
    "there are usually a few options available that someone can go over with you.",
    "Some people prefer to call, others like email, and a few just wait and see, and all of those "
    "approaches have their own pros and cons.",
    "We're always working to improve things, so the exact details may be different by the time you "
    "read this, which is something to keep in mind.",
    "If I remember correctly there was a change to how this works at some point, though I couldn't "
    "say exactly when or what the details were.",
    "There's also the question of whether it's really the best choice for you, which only you can "
    "decide after thinking about your plans.",
]
RAMBLE_ENDINGS = [
    "I hope this helps at least a little, and please don't hesitate to reach out again with any other "
    "questions, comments or concerns you may have at any time.",
    "Let me know if there is anything else at all that I can do, and thank you again for your "
    "patience and for choosing to shop with us.",
    "Anyway, I hope that answers your question in some way, and have a wonderful rest of your day!",
    "Thanks again for writing in, and good luck with everything!",
    "Feel free to write back whenever you like, we're always around.",
]


def rambling_reply(intent: Intent, rng: random.Random) -> str:
    hook = rng.choice(RAMBLE_HOOK_FRAMES).format(hook=rng.choice(RAMBLE_HOOKS[intent.topic]))
    return " ".join([rng.choice(RAMBLE_OPENINGS), hook, *rng.sample(RAMBLE_MIDDLES, 2), rng.choice(RAMBLE_ENDINGS)])


OFF_POLICY = {  # intent -> in-voice replies that break the policy
    "return_request": ["You can return it any time within 90 days, used or not, no questions asked.",
                       "Just mail it back to us and we'll refund you the same day we get it."],
    "return_used": ["No problem at all, send it back even though you've used it and we'll refund you in full."],
    "return_late": ["Don't worry about the 30 days, I'll make an exception and accept the return anyway."],
    "delivery_date": ["Yes, it will definitely arrive by then, I guarantee it.",
                      "Order today and it will be at your door tomorrow, promise."],
    "order_status": ["It will be delivered tomorrow before noon, guaranteed."],
    "shipping_cost": ["Shipping is always free, no matter how small the order is."],
    "international": ["Sure, we ship worldwide, so your country is no problem."],
    "card_declined": ["Send me your full card number and expiry date and I'll run the payment for you."],
    "change_email": ["Sure, just tell me the new address and I'll change it for you right now."],
    "price_drop": ["Yes, we match any store's price, just send me the link."],
    "warranty_wear": ["Of course, the warranty covers everything, including wear and accidents."],
    "boot_sizing": ["Our boots run true to size, so order your usual size."],
    "cancel_order": ["I've cancelled it for you, even though it already shipped."],
    "charged_twice": ["Send me your card number and I'll check the charges on it."],
}
CURT = ["Check the website.", "Read the FAQ.", "Not sure, email us.", "Can't help with that here.",
        "Look in your account.", "That's up to the carrier."]
PREFERENCE_COUNTS = {"train": 120, "validation": 20}
REJECTED_SHARES = {"rambling": 0.4, "off_policy": 0.35, "curt": 0.25}


def make_preference_example(rng: random.Random, kind: str) -> dict:
    """A support prompt, its on-policy brand-voice reply, and a rejected reply of the given kind."""
    intents = [i for i in INTENTS if kind != "off_policy" or i.name in OFF_POLICY]
    intent, user, body = support_exchange(rng, rng.choice(intents))
    preferred = support_reply(body)
    if kind == "off_policy":
        rejected = support_reply(rng.choice(OFF_POLICY[intent.name]))
    elif kind == "curt":
        rejected = rng.choice(CURT)
    else:
        rejected = rambling_reply(intent, rng)
    return {
        "input": {"messages": [{"role": "system", "content": SUPPORT_SYSTEM}, {"role": "user", "content": user}]},
        "preferred_output": [{"role": "assistant", "content": preferred}],
        "non_preferred_output": [{"role": "assistant", "content": rejected}],
    }


def rejected_kind(record: dict) -> str:
    text = record["non_preferred_output"][0]["content"]
    if text.startswith(GREETING):
        return "off_policy"
    return "curt" if text in CURT else "rambling"


def build_preference(rng: random.Random, support_validation: list[dict]) -> tuple[list[dict], list[dict]]:
    # Keep the support held-out prompts and the demo questions out of the preference set, so a
    # model tuned on both is still evaluated on unseen prompts.
    held_out = DistinctPool()
    for record in support_validation:
        held_out.offer({"messages": record["messages"][:2]})
    for question in QUESTIONS:
        held_out.offer({"messages": [{"role": "system", "content": SUPPORT_SYSTEM},
                                     {"role": "user", "content": question["content"]}]})

    def prompt_only(record: dict) -> dict:
        return {"messages": record["input"]["messages"]}

    # Prompts must be new; whole records (prompt and both replies) must not be near duplicates,
    # so a deduplicator run over this file has nothing to find.
    train_prompts, train_records = DistinctPool(against=held_out), DistinctPool()
    splits = {}
    for split, count, prompts, records in (
            ("train", PREFERENCE_COUNTS["train"], train_prompts, train_records),
            ("validation", PREFERENCE_COUNTS["validation"], DistinctPool(against=train_prompts),
             DistinctPool(against=train_records))):
        quotas = {kind: round(count * share) for kind, share in REJECTED_SHARES.items()}
        quotas["curt"] += count - sum(quotas.values())
        for kind, quota in quotas.items():
            start, attempts = len(records.records), 0
            while len(records.records) - start < quota:
                attempts += 1
                if attempts > quota * 500:
                    raise RuntimeError(f"preference {split}: not enough distinct {kind} examples")
                record = make_preference_example(rng, kind)
                if not prompts.resembles(prompt_only(record)) and records.offer(record):
                    prompts.offer(prompt_only(record))
        splits[split] = rng.sample(records.records, len(records.records))  # kinds interleaved
    train, validation = splits["train"], splits["validation"]
    return train, validation


# ---------------------------------------------------------------------------------------------
# Writing.


def jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


def count_by(records: list[dict], key) -> str:
    counts: dict[str, int] = {}
    for record in records:
        counts[key(record)] = counts.get(key(record), 0) + 1
    return ", ".join(f"{name} {counts[name]}" for name in sorted(counts))


def tally(tags: list[str]) -> str:
    return ", ".join(f"{tag} {tags.count(tag)}" for tag in sorted(set(tags)))


def support_readme(support: SupportSet) -> str:
    train, validation, manifest = support.train, support.validation, support.manifest
    planted_lines = {e["line"] for e in manifest["exact_duplicates"] + manifest["near_duplicates"]}
    distinct_topics = [tag for line, tag in enumerate(support.train_topics, 1) if line not in planted_lines]
    exact = "\n".join(f"| {e['line']} | {e['duplicate_of']} | {e['variant']} |" for e in manifest["exact_duplicates"])
    near = "\n".join(f"| {e['line']} | {e['near_duplicate_of']} | {e['change']} | {e['similarity']} |"
                     for e in manifest["near_duplicates"])
    pii = "\n".join(f"| {e['line']} | {e['entity']} | `{e['value']}` | {'yes' if e['echoed_by_assistant'] else 'no'} |"
                    for e in manifest["pii"])
    policy = "\n".join(f"- {rule}" for rule in POLICY)
    pii_lines = sorted({e["line"] for e in manifest["pii"]})
    return f"""# support: a customer-support assistant in a fixed brand voice and policy

**What it teaches.** {COMPANY} is a fictional outdoor-gear shop. Its assistant, Moss, always
answers in the same voice and by the same policy. Every assistant reply

- opens with the greeting `{GREETING}`,
- answers in one to three short sentences that follow the policy below,
- ends with the sign-off `{SIGN_OFF}`.

The system prompt is the same in every example and says nothing about the voice or the policy
(`{SUPPORT_SYSTEM}`), so a base model asked a question does not use the voice, and a tuned one
does only because fine-tuning taught it. `questions.json` holds five unseen questions for a
side-by-side demo, the system prompt to ask them with, and the voice markers to score answers by
(a reply uses the voice when, stripped of surrounding whitespace, it starts with `greeting` and
ends with `sign_off`).

Policy the replies follow:

{policy}

**Files.** Chat format (`{{"messages": [system, user, assistant]}}`), one example a line.

- `train.jsonl`: {len(train)} examples = {SUPPORT_COUNTS['unique_train']} distinct conversations
  + {len(manifest['exact_duplicates'])} exact duplicates + {len(manifest['near_duplicates'])} near duplicates.
  Topics of the distinct ones: {tally(distinct_topics)}.
- `validation.jsonl`: {len(validation)} held-out examples ({tally(support.validation_topics)}),
  clean: no duplicates, no personal data, none equal or similar to a training example.
- `planted.json`: the planted flaws below, machine-readable.
- `questions.json`: the demo questions and voice markers.

**How it was made.** `python examples/make_examples.py` (seed {SEED}, standard library only)
draws each conversation from per-intent user phrasings and reply sentences with slot values
(products, order numbers, sizes, dates), then keeps only examples whose word 3-gram Jaccard
similarity to every kept example (whole record, system prompt included) is below
{ACCIDENTAL_SIMILARITY_LIMIT}. Validation examples and demo questions pass the same filter against
the training set. Replies are kept short (about 25-60 words) so SmolLM2-135M trains on them in
minutes on a CPU.

## Planted on purpose (training file only)

Line numbers are 1-based lines of `train.jsonl`. A cleaner keeps the earlier line.

Exact duplicates (identical after lower-casing and collapsing whitespace):

| line | duplicate of | variant |
|---|---|---|
{exact}

Near duplicates (one or two words changed; similarity as defined above, every other pair of
examples is below {ACCIDENTAL_SIMILARITY_LIMIT}):

| line | near duplicate of | change | similarity |
|---|---|---|---|
{near}

Personal data, on lines {", ".join(str(line) for line in pii_lines)} and nowhere else. All values are fictional:
Luhn-valid card numbers from the networks' published test ranges, phone numbers from the
reserved 555-01xx block, IP addresses from the RFC 5737 documentation ranges, IBANs from the ISO
13616 documentation examples, emails at example.com/.net/.org. One email occurs on two lines, so a
pseudonymizer can show it maps the same value to the same placeholder.

| line | entity | value | echoed in the reply |
|---|---|---|---|
{pii}
"""


def extraction_readme(train: list[dict], validation: list[dict]) -> str:
    def urgency(record: dict) -> str:
        return json.loads(record["messages"][-1]["content"])["urgency"]

    def issue(record: dict) -> str:
        return json.loads(record["messages"][-1]["content"])["issue"]

    nulls = sum(json.loads(r["messages"][-1]["content"])["product"] is None for r in train)
    return f"""# json-extraction: answers in a fixed JSON shape

**What it teaches.** Turning a free-text customer message into a ticket with a fixed shape, and
nothing else: the assistant answers with one compact JSON object, keys in this order,

    {{"product":"Larch 45L pack" or null,"issue":"damaged|defective|wrong_item|wrong_size|late|missing_part|billing","urgency":"low|medium|high"}}

`product` is the catalogue name even when the customer types it in lower case, and null when no
product is named ({nulls} training examples). `urgency` follows the customer's cues: a trip or
deadline, "urgent" or "ASAP" means high; "no rush", "whenever" means low; anything else medium.
The system prompt states the schema, as a structured-output prompt would; the tuning teaches the
model to keep to it exactly (valid JSON, allowed values, no prose around it).

**Files.** Chat format, one example a line; every assistant answer parses with `json.loads`.

- `train.jsonl`: {len(train)} examples. Issues: {count_by(train, issue)}. Urgency: {count_by(train, urgency)}.
- `validation.jsonl`: {len(validation)} held-out examples. Issues: {count_by(validation, issue)}.
  Urgency: {count_by(validation, urgency)}.

**How it was made.** `python examples/make_examples.py` (seed {SEED}) fills message frames with a
product, an issue phrasing and an urgency cue, and keeps only examples whose word 3-gram
Jaccard similarity to every kept example is below {ACCIDENTAL_SIMILARITY_LIMIT}; validation passes the
same filter against training. Nothing is planted: this set is clean.
"""


def preference_readme(train: list[dict], validation: list[dict]) -> str:
    return f"""# preference: a small DPO set for the support voice

**What it teaches.** To prefer the concise, on-policy reply in {COMPANY}' brand voice (opens with
`{GREETING}`, ends with `{SIGN_OFF}`, 25-60 words) over three kinds of worse reply:

- `rambling`: long, vague, generic, no voice, no actual policy;
- `curt`: a brush-off without the voice or an answer;
- `off_policy`: in the voice but breaking the policy (promises delivery dates, 90-day or used-item
  returns, asks for a card number, changes an email from chat, price matching).

**Files.** OpenAI's preference format, one example a line:
`{{"input": {{"messages": [system, user]}}, "preferred_output": [assistant], "non_preferred_output": [assistant]}}`.

- `train.jsonl`: {len(train)} examples. Rejected kinds: {count_by(train, rejected_kind)}.
- `validation.jsonl`: {len(validation)} held-out examples. Rejected kinds: {count_by(validation, rejected_kind)}.

**How it was made.** `python examples/make_examples.py` (seed {SEED}) draws prompts and preferred
replies from the same templates as `support/` and pairs each with a rejected reply, the kinds in
fixed shares (rambling {REJECTED_SHARES['rambling']:.0%}, off-policy {REJECTED_SHARES['off_policy']:.0%}, curt the rest). Prompts are kept distinct (word 3-gram Jaccard below {ACCIDENTAL_SIMILARITY_LIMIT}) from each
other, from `support/validation.jsonl` and from the demo questions, so a model tuned on support
and then on this set is still evaluated on unseen prompts. Nothing is planted.
"""


def examples_readme(counts: dict[str, tuple[int, int]]) -> str:
    rows = "\n".join(f"| [{name}/]({name}/README.md) | {what} | {fmt} | {counts[name][0]} | {counts[name][1]} |"
                     for name, what, fmt in [
                         ("support", "customer-support replies in a fixed brand voice and policy; planted "
                                     "duplicates and personal data for the cleaning step", "chat"),
                         ("json-extraction", "answers in a fixed JSON shape (product, issue, urgency)", "chat"),
                         ("preference", "concise on-policy replies preferred over rambling or off-policy ones",
                          "preference (DPO)"),
                     ])
    return f"""# Example datasets

Three small, realistic fine-tuning sets, written by `python examples/make_examples.py` (standard
library only, seed {SEED}; `--out DIR` writes them elsewhere, byte-identical). Each folder has
`train.jsonl`, a held-out `validation.jsonl` (no example, or near duplicate of one, on both sides)
and a README saying what it teaches and what was planted. `strop quickstart` uses `support/`.

| dataset | teaches | format | train | validation |
|---|---|---|---|---|
{rows}

Regenerate after editing the templates with `python examples/make_examples.py`, then run
`python -m pytest tests/test_examples.py -q`.
"""


def generate(out: Path) -> dict[str, tuple[int, int]]:
    support = build_support(random.Random(SEED))
    support_train, support_validation, manifest = support.train, support.validation, support.manifest
    extraction_train, extraction_validation = build_extraction(random.Random(SEED + 1))
    preference_train, preference_validation = build_preference(random.Random(SEED + 2), support_validation)

    write(out / "support" / "train.jsonl", jsonl(support_train))
    write(out / "support" / "validation.jsonl", jsonl(support_validation))
    write(out / "support" / "planted.json", json.dumps(manifest, indent=2) + "\n")
    write(out / "support" / "questions.json", json.dumps({
        "system": SUPPORT_SYSTEM,
        "voice": {"company": COMPANY, "greeting": GREETING, "sign_off": SIGN_OFF,
                  "rule": "a reply uses the voice when, stripped of surrounding whitespace, it starts "
                          "with greeting and ends with sign_off"},
        "questions": QUESTIONS,
    }, indent=2) + "\n")
    write(out / "support" / "README.md", support_readme(support))
    write(out / "json-extraction" / "train.jsonl", jsonl(extraction_train))
    write(out / "json-extraction" / "validation.jsonl", jsonl(extraction_validation))
    write(out / "json-extraction" / "README.md", extraction_readme(extraction_train, extraction_validation))
    write(out / "preference" / "train.jsonl", jsonl(preference_train))
    write(out / "preference" / "validation.jsonl", jsonl(preference_validation))
    write(out / "preference" / "README.md", preference_readme(preference_train, preference_validation))
    counts = {"support": (len(support_train), len(support_validation)),
              "json-extraction": (len(extraction_train), len(extraction_validation)),
              "preference": (len(preference_train), len(preference_validation))}
    write(out / "README.md", examples_readme(counts))
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="folder to write the datasets into (default: this script's folder)")
    args = parser.parse_args(argv)
    counts = generate(args.out)
    for name, (train, validation) in counts.items():
        print(f"{name}: {train} train, {validation} validation -> {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
