"""Synthetic chat data for engram-tiny-chat: conversations about a user's personal facts.

Everything is drawn from a numpy Generator the caller seeds (train_chat.py: PCG64(seed, step)),
so a batch is a pure function of (seed, step). Every list of names, values and wordings is cut in
two by index: the held-out part (split="heldout") is never produced for training and is what
chat_eval.py measures on.

Format (ChatML; the GGUF's tokenizer.chat_template renders exactly this):
  <|im_start|>{role}\n{content}<|im_end|>\n   for every message, then <|im_start|>assistant\n
Tokens are made as engram and llama.cpp make them from the rendered text: the control tokens are
split out and every text fragment between them is SentencePiece-encoded on its own (with its
dummy-prefix space). Only assistant content and its closing <|im_end|> are scored.

The five tasks of issue 19 (plus the pass key in a user message):
  recall      facts stated in the conversation (some in passing, some corrected), questions later
  memory      the memory block (MEMORY_HEAD / [i] lines / MEMORY_TAIL) in the system prompt; answer
              citing [i], or ABSTAIN when no memory holds the answer
  extract     a numbered conversation -> {"extracted_memories": [{"summary": ..., "reference": [..]}]}
  addmerge    existing memories + a new one -> Add() or Merge(i, "merged summary")
  chitchat    small talk
  passkey     a pass key hidden in Brown text inside a user message
"""
import json
import re

import numpy as np

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
BOS = 1

SYSTEM_PLAIN = "You are a helpful assistant."
MEMORY_HEAD = "You are a helpful assistant. Memories about the user:"
MEMORY_TAIL = "Cite the memory you use as [i]. If none applies, say you don't know."
ABSTAIN = "I don't know. You haven't told me that."
EXTRACT_SYSTEM = ("Extract memories about the user from the conversation. Answer with JSON: "
                  "{\"extracted_memories\": [{\"summary\": ..., \"reference\": [turn ids]}]}.")
MERGE_SYSTEM = ("Decide how to store the new memory. Answer Add() if it is a new fact, or "
                "Merge(i, \"summary\") to combine it with existing memory [i].")


def split(items, heldout):
    """every 4th item (index 3, 7, ...) is held out"""
    return [x for i, x in enumerate(items) if (i % 4 == 3) == heldout]


def wsplit(items, heldout):
    """wordings: the last one is held out"""
    return items[-1:] if heldout else items[:-1]


NAMES = ["Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Henry", "Irene", "Jack", "Kate", "Louis",
         "Mary", "Nora", "Oscar", "Paul", "Ruth", "Sam", "Tom", "Vera", "Anna", "Ben", "Clara", "Daniel",
         "Ella", "Felix", "Hannah", "Ivan", "Julia", "Kevin", "Laura", "Martin", "Nina", "Owen", "Peter",
         "Rachel", "Simon", "Tina", "Victor", "Wendy", "Adam", "Beth", "Chris", "Diana", "Eric", "Fiona",
         "George", "Helen", "Isaac", "Jane", "Karl", "Lucy", "Mike", "Nancy", "Oliver", "Pam", "Rose", "Steve",
         "Tara", "Walter", "Amy", "Brian", "Cindy", "Dennis", "Eva", "Fred", "Gina", "Harry", "Ida", "Joe",
         "Kim", "Leo", "Maria", "Ned", "Olga", "Philip", "Rita", "Sarah", "Ted", "Ursula"]
PET_NAMES = ["Rex", "Max", "Luna", "Bella", "Charlie", "Milo", "Coco", "Daisy", "Buddy", "Rocky", "Pepper",
             "Biscuit", "Ziggy", "Mango", "Shadow", "Whiskers", "Noodle", "Pickles", "Toby", "Ginger", "Oreo",
             "Peanut", "Sunny", "Smokey", "Bandit", "Cookie", "Honey", "Jasper", "Lucky", "Muffin", "Pixel",
             "Rusty"]
JOBS = ["nurse", "teacher", "software engineer", "carpenter", "lawyer", "chef", "pilot", "accountant", "dentist",
        "electrician", "librarian", "firefighter", "architect", "plumber", "pharmacist", "journalist", "farmer",
        "baker", "mechanic", "photographer", "doctor", "painter", "waiter", "translator"]
COMPANIES = ["Northwind Bank", "Blue Harbor Foods", "Acme Tools", "Summit Health", "Redwood Press",
             "Silver Lake Motors", "Green Valley Farms", "Orion Software", "Maple Street Bakery", "Atlas Shipping",
             "City Hospital", "Bright Star Media", "Pine Hill School", "Golden Gate Insurance", "River Rock Hotel",
             "Iron Bridge Steel", "Sunrise Airlines", "Cedar Grove Library", "Harbor Light Energy",
             "Crystal Water Company", "Eagle Eye Security", "Lakeside Clinic", "Falcon Games", "Oak Tree Bank"]
CITIES = ["Boston", "Denver", "Chicago", "Seattle", "Austin", "Portland", "Dallas", "Miami", "Atlanta", "Phoenix",
          "Detroit", "Toronto", "London", "Paris", "Berlin", "Madrid", "Rome", "Dublin", "Oslo", "Vienna", "Prague",
          "Lisbon", "Sydney", "Tokyo", "Houston", "Nashville", "Memphis", "Omaha", "Tampa", "Geneva", "Milan",
          "Munich"]
HOBBIES = ["chess", "hiking", "painting", "knitting", "tennis", "swimming", "gardening", "fishing", "cooking",
           "photography", "cycling", "pottery", "running", "birdwatching", "surfing", "dancing", "climbing",
           "baking", "sailing", "yoga", "golf", "singing", "skiing", "reading"]
FOODS = ["pizza", "sushi", "pasta", "tacos", "curry", "pancakes", "ramen", "lasagna", "dumplings", "burritos",
         "falafel", "paella", "risotto", "steak", "soup", "burgers", "noodles", "waffles", "salmon", "chili",
         "omelets", "pie", "kebabs", "chowder"]
DISLIKES = ["mushrooms", "olives", "onions", "cilantro", "broccoli", "tomatoes", "eggplant", "celery", "beets",
            "spinach", "anchovies", "liver", "peppers", "cabbage", "tofu", "radishes", "garlic", "pickles",
            "carrots", "peas", "oysters", "lentils", "cucumbers", "raisins"]
ALLERGIES = ["peanuts", "shellfish", "penicillin", "cats", "pollen", "eggs", "milk", "bees", "latex", "gluten",
             "dust", "soy", "strawberries", "walnuts", "sesame", "wheat"]
CONDITIONS = ["asthma", "diabetes", "migraines", "high blood pressure", "a bad knee", "back pain", "insomnia",
              "arthritis", "eczema", "anemia", "a heart murmur", "a weak ankle"]
COLORS = ["red", "blue", "green", "black", "white", "silver", "gray", "yellow"]
MAKES = ["Toyota", "Honda", "Ford", "Volvo", "Subaru", "Mazda", "Nissan", "Kia", "Fiat", "Jeep"]
CARS = [f"{c} {m}" for c in COLORS for m in MAKES]  # index % 4 == 3 held out: a mix of both parts
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
DATES = [f"{m} {d}" for m in MONTHS for d in (3, 5, 8, 11, 14, 17, 19, 22, 25, 28)]

SYLLABLES = ["ka", "lo", "mi", "ra", "te", "vo", "ben", "dor", "fi", "gal", "ha", "jo", "kel", "lin", "mar", "no",
             "pa", "ri", "sa", "tor", "ul", "va", "wen", "ya", "zo", "bri", "cha", "del", "ek", "fen"]
COMPANY_KINDS = ["Bank", "Foods", "Tools", "Health", "Press", "Motors", "Media", "Labs", "Group", "Company",
                 "Works", "Studio", "Systems", "Hotel"]
RELATIONS = ["sister", "brother", "mother", "father", "wife", "husband", "son", "daughter", "cousin",
             "best friend", "boss", "neighbor"]
PET_KINDS = ["dog", "cat", "parrot", "rabbit", "hamster", "horse", "turtle", "goldfish"]
EVENTS = ["dentist appointment", "job interview", "flight", "doctor's appointment", "birthday party", "concert",
          "exam", "haircut", "meeting with the bank", "piano recital"]


def art(w):
    return ("an " if w[0] in "aeiou" else "a ") + w


# Each category: slots (a word that tells two facts of the category apart, or [""]), values, statement
# wordings (the last held out), question wordings (the last held out), the answer and the summary.
# {s} slot, {v} value, {a} value with its article.
CATS = {
    "family": dict(
        slots=RELATIONS, values=NAMES,
        state=["My {s} is called {v}.", "My {s}'s name is {v}.", "I had lunch with my {s} {v} today.",
               "{v} is my {s}.", "I just got off the phone with my {s}, {v}.", "My {s} {v} is visiting this week."],
        ask=["What is my {s}'s name?", "What's my {s} called?", "Do you remember my {s}'s name?",
             "Who is my {s}?"],
        answer="Your {s} is named {v}.", summary="User's {s} is named {v}.", multi=None),
    "pet": dict(
        slots=PET_KINDS, values=PET_NAMES,
        state=["I have a {s} named {v}.", "My {s} is called {v}.", "My {s} {v} woke me up early today.",
               "We adopted a {s} and named it {v}.", "Our {s}, {v}, is getting old."],
        ask=["What is my {s}'s name?", "What did I name my {s}?", "What's my {s} called?"],
        answer="Your {s} is named {v}.", summary="User has a {s} named {v}.", multi=None),
    "job": dict(
        slots=[""], values=JOBS,
        state=["I work as {a}.", "I'm {a}.", "I have been {a} for ten years.", "My job? I am {a}.",
               "Being {a} is tiring some days."],
        ask=["What do I do for a living?", "What is my job?", "What's my profession?"],
        answer="You work as {a}.", summary="User works as {a}.", multi=None),
    "employer": dict(
        slots=[""], values=COMPANIES,
        state=["I work at {v}.", "My employer is {v}.", "I got a job at {v}.", "I have worked for {v} since May.",
               "Things are busy at {v}, where I work."],
        ask=["Where do I work?", "Which company do I work for?", "Who is my employer?"],
        answer="You work at {v}.", summary="User works at {v}.", multi=None),
    "hometown": dict(
        slots=[""], values=CITIES,
        state=["I grew up in {v}.", "My home town is {v}.", "I was born and raised in {v}.",
               "Back in {v}, where I grew up, it snowed a lot.", "I spent my childhood in {v}."],
        ask=["Where did I grow up?", "What is my home town?", "Where was I raised?"],
        answer="You grew up in {v}.", summary="User grew up in {v}.", multi=None),
    "city": dict(
        slots=[""], values=CITIES,
        state=["I live in {v}.", "These days I live in {v}.", "I moved to {v} last year.",
               "My apartment in {v} is small.", "I'm based in {v} now."],
        ask=["Where do I live?", "Which city do I live in?", "What city am I living in now?"],
        answer="You live in {v}.", summary="User lives in {v}.", multi=None),
    "hobby": dict(
        slots=[""], values=HOBBIES,
        state=["My hobby is {v}.", "In my free time I enjoy {v}.", "I love {v}.",
               "I spent the weekend {v} again, my favorite hobby.", "I'm really into {v} lately."],
        ask=["What is my hobby?", "What do I like to do in my free time?", "What hobby do I have?"],
        answer="Your hobby is {v}.", summary="User's hobby is {v}.", multi="User's hobbies are {v} and {w}."),
    "food": dict(
        slots=[""], values=FOODS,
        state=["My favorite food is {v}.", "I could eat {v} every day.", "Nothing beats {v}, my favorite.",
               "I love {v} more than any other food.", "For me the best food is {v}."],
        ask=["What is my favorite food?", "What food do I like best?", "Which food is my favorite?"],
        answer="Your favorite food is {v}.", summary="User's favorite food is {v}.", multi=None),
    "dislike": dict(
        slots=[""], values=DISLIKES,
        state=["I can't stand {v}.", "I really dislike {v}.", "Please, no {v} for me, I hate them.",
               "I never eat {v}.", "I find {v} disgusting."],
        ask=["What food do I dislike?", "Which food do I hate?", "What do I refuse to eat?"],
        answer="You dislike {v}.", summary="User dislikes {v}.", multi="User dislikes {v} and {w}."),
    "plan": dict(
        slots=EVENTS, values=DATES,
        state=["I have a {s} on {v}.", "My {s} is on {v}.", "Remind me that my {s} is on {v}.",
               "I'm nervous about my {s} on {v}.", "On {v} I have my {s}."],
        ask=["When is my {s}?", "What is the date of my {s}?", "On what day is my {s}?"],
        answer="Your {s} is on {v}.", summary="User has a {s} on {v}.", multi=None),
    "car": dict(
        slots=[""], values=CARS,
        state=["I drive a {v}.", "My car is a {v}.", "I just bought a {v}.", "My old {v} broke down again.",
               "I parked my {v} outside."],
        ask=["What car do I drive?", "What kind of car do I have?", "Which car is mine?"],
        answer="You drive a {v}.", summary="User drives a {v}.", multi=None),
    "allergy": dict(
        slots=[""], values=ALLERGIES,
        state=["I'm allergic to {v}.", "I have an allergy to {v}.", "My doctor says I am allergic to {v}.",
               "I have to stay away from {v} because of my allergy.", "Being allergic to {v} is a pain."],
        ask=["What am I allergic to?", "What is my allergy?", "Do you know what I'm allergic to?"],
        answer="You are allergic to {v}.", summary="User is allergic to {v}.",
        multi="User is allergic to {v} and {w}."),
    "health": dict(
        slots=[""], values=CONDITIONS,
        state=["I have {v}.", "I was diagnosed with {v}.", "I've been living with {v} for years.",
               "My {v} has been bad this week.", "I suffer from {v}."],
        ask=["What health condition do I have?", "What was I diagnosed with?", "What health problem do I have?"],
        answer="You have {v}.", summary="User has {v}.", multi=None),
}
# Training-only question wordings and frames, used from --augment-from on (train_chat.py): with two or
# three wordings a kind, a question in an unseen wording was mapped to the wrong kind (held-out
# values with training wordings 75%, with the held-out wordings 20%, at step 564).
EXTRA_ASK = {
    "family": ["What's the name of my {s}?", "Tell me my {s}'s name.", "How is my {s} called?",
               "What name does my {s} have?"],
    "pet": ["What name does my {s} have?", "Tell me my {s}'s name.", "How did I name my {s}?",
            "What is the name of my {s}?"],
    "job": ["What work do I do?", "What is my occupation?", "Tell me what my job is.", "What do I work as?"],
    "employer": ["What company do I work at?", "Where is my job?", "Which firm employs me?", "Tell me where I work."],
    "hometown": ["Which town did I grow up in?", "Where is my home town?", "Where did I live as a kid?",
                 "Where am I from originally?"],
    "city": ["Where is my home now?", "Which city is home for me?", "In what city do I live?", "Where do I live these days?"],
    "hobby": ["How do I spend my free time?", "What do I enjoy doing?", "Tell me my hobby.",
              "What is my favorite pastime?"],
    "food": ["What do I love to eat?", "What is the food I like most?", "Tell me my favorite food.",
             "What dish do I love?"],
    "dislike": ["Which food can't I stand?", "What food do I not like?", "Tell me what food I hate.",
                "What food should you never offer me?"],
    "plan": ["What day is my {s}?", "When do I have my {s}?", "Tell me the date of my {s}.",
             "Which date is my {s} on?"],
    "car": ["What do I drive?", "Tell me what car I have.", "What is my car?", "Which car do I own?"],
    "allergy": ["What allergy do I have?", "What am I allergic to again?", "Tell me my allergy.",
                "What should I avoid because of my allergy?"],
    "health": ["What is my health condition?", "What illness do I have?", "Tell me my diagnosis.",
               "What medical condition do I have?"],
}
# Training-only wordings (compositional, issue 19 session 3): many more statement and question cores a
# category, combined with prefix/suffix frames and in-passing context, so that an unseen wording is near
# the training distribution. Used whenever ChatGen.augment is set (from step 0 in the shipped run).
# The held-out wording of every list (its last entry) is checked at import never to be one of these
# cores, nor inside one (_check_heldout).
MORE_STATE = {
    "family": ["I have a {s} named {v}.", "{v}, my {s}, called me last night.", "My {s} goes by {v}.",
               "I went shopping with {v}, my {s}.", "Yesterday my {s} {v} cooked dinner for us.",
               "The name of my {s} is {v}.", "I miss my {s} {v} a lot.", "My {s} is {v}.",
               "I'm meeting my {s} {v} for coffee.", "{v} is the name of my {s}.",
               "I helped my {s}, {v}, move house.", "Everyone says I look like my {s} {v}."],
    "pet": ["My {s}'s name is {v}.", "{v} is my {s}.", "I got a {s} and called it {v}.",
            "My little {s} {v} is so cute.", "I took my {s} {v} to the vet.", "The name of my {s} is {v}.",
            "{v}, my {s}, chewed my shoes.", "We have a {s}. Its name is {v}.", "I feed my {s} {v} twice a day.",
            "My {s} is named {v}.", "I love my {s}, {v}."],
    "job": ["I am {a} by profession.", "I earn my living as {a}.", "I've worked as {a} for years.",
            "My work as {a} keeps me busy.", "I trained to be {a} and I am one now.", "For work, I'm {a}.",
            "I make a living as {a}.", "At work I'm {a}.", "My job is {a}.", "I became {a} last year."],
    "employer": ["I'm employed by {v}.", "I work for {v}.", "My company is {v}.", "{v} is where I work.",
                 "I started working at {v} in March.", "My boss at {v} is strict.", "I have a job at {v}.",
                 "I spend my days at {v}, my employer.", "I've been at {v} for five years.",
                 "The company I work for is {v}."],
    "hometown": ["I'm originally from {v}.", "I was born in {v}.", "{v} is my home town.", "I come from {v}.",
                 "As a kid I lived in {v}.", "My parents still live in {v}, where I grew up.", "My roots are in {v}.",
                 "I grew up in {v}, a long time ago.", "Where I grew up? {v}.", "I lived in {v} as a child."],
    "city": ["I live in {v} now.", "My home is in {v}.", "I have an apartment in {v}.", "{v} is where I live.",
             "I currently live in {v}.", "We just settled in {v}.", "My house is in {v}.",
             "I've been living in {v} since spring.", "Right now I live in {v}.", "I call {v} home these days."],
    "hobby": ["I enjoy {v}.", "{v} is my favorite hobby.", "My favorite pastime is {v}.", "I like {v} a lot.",
              "On weekends I go {v}.", "I spend my free time {v}.", "My main hobby is {v}.",
              "I took up {v} last year.", "Nothing relaxes me like {v}.", "I'm a big fan of {v}.",
              "I've been {v} every weekend."],
    "food": ["I love {v}.", "{v} is my favorite food.", "My favorite dish is {v}.", "I adore {v}.",
             "The food I like most is {v}.", "I would eat {v} every night.", "My favorite meal is {v}.",
             "Best food in the world? {v}.", "I always order {v}.", "I'm crazy about {v}."],
    "dislike": ["I hate {v}.", "I don't like {v}.", "{v} are awful, I never eat them.", "I can't eat {v}.",
                "I refuse to eat {v}.", "Please never give me {v}.", "I really don't like {v}.",
                "I avoid {v} at dinner.", "The one food I hate is {v}.", "Yuck, {v}. I hate them."],
    "plan": ["My {s} is set for {v}.", "I've got a {s} on {v}.", "There's my {s} on {v}.",
             "Don't let me forget my {s} on {v}.", "I booked my {s} for {v}.", "The {s} is on {v}.",
             "My {s} is scheduled for {v}.", "I'm going to my {s} on {v}.", "Mark {v}: my {s}.",
             "I have my {s} on {v}."],
    "car": ["I own a {v}.", "My ride is a {v}.", "I have a {v}.", "I got a {v} last month.",
            "My car? A {v}.", "I drive an old {v}.", "I washed my {v} today.", "The car I drive is a {v}.",
            "I bought myself a {v}.", "I love my {v}."],
    "allergy": ["I am allergic to {v}.", "{v} make me sick, I'm allergic.", "My allergy is to {v}.",
                "I can't be near {v}, I'm allergic.", "I found out I'm allergic to {v}.",
                "Allergy warning: {v}.", "I get an allergic reaction from {v}.", "I'm very allergic to {v}.",
                "I have a bad allergy to {v}.", "The doctor told me I'm allergic to {v}."],
    "health": ["I've got {v}.", "My doctor says I have {v}.", "I live with {v}.", "I'm dealing with {v}.",
               "I was told I have {v}.", "I have had {v} since I was young.", "Because of {v} I see a doctor.",
               "I take medicine for {v}.", "I struggle with {v}.", "My health issue is {v}."],
}
MORE_ASK = {
    "family": ["What do I call my {s}?", "Remind me of my {s}'s name.", "Whats the name of my {s}?",
               "Can you tell me my {s}'s name?", "My {s} is called what?", "What was my {s}'s name?",
               "Do you know my {s}'s name?", "What is the name of my {s}?"],
    "pet": ["Do you remember my {s}'s name?", "What is my {s} named?", "Can you tell me my {s}'s name?",
            "What was my {s}'s name?", "Remind me of my {s}'s name.", "What do I call my {s}?",
            "My {s} is called what?"],
    "job": ["What do I work as?", "What is my line of work?", "Can you tell me my job?", "Remind me what I do.",
            "What's my job?", "What kind of work do I do?", "Do you remember my job?", "How do I earn a living?"],
    "employer": ["Where is my workplace?", "What company employs me?", "Do you remember where I work?",
                 "Which employer do I have?", "Where am I employed?", "Who do I work for?",
                 "Can you tell me where I work?", "What's my company?"],
    "hometown": ["Where am I from?", "Where was I born?", "What's my home town?", "Which city did I grow up in?",
                 "Do you remember where I grew up?", "Where do I come from?", "Can you tell me my home town?",
                 "What town am I from?"],
    "city": ["Where do I live now?", "What is my city?", "Do you remember where I live?", "Where is my home?",
             "Which city am I in?", "Can you tell me where I live?", "Where's my apartment?",
             "What city do I call home?"],
    "hobby": ["What do I do for fun?", "What's my hobby?", "Do you remember my hobby?", "What is my pastime?",
              "Can you tell me my hobby?", "What do I enjoy in my spare time?", "Which hobby is mine?",
              "What do I do on weekends?"],
    "food": ["What's my favorite food?", "Do you remember my favorite food?", "What is my favorite dish?",
             "What food do I love?", "Can you tell me my favorite food?", "What do I like to eat most?",
             "What's my favorite meal?", "What should you cook for me?"],
    "dislike": ["What don't I like to eat?", "Which food do I dislike?", "What food do I hate?",
                "Do you remember what food I hate?", "What should you not cook for me?",
                "Can you tell me what I won't eat?", "What food do I avoid?", "What do I hate eating?"],
    "plan": ["When's my {s}?", "What date is my {s}?", "Do you remember when my {s} is?",
             "Can you tell me when my {s} is?", "When is my {s} scheduled?", "What day do I have my {s}?",
             "Remind me when my {s} is.", "When do I go to my {s}?"],
    "car": ["What's my car?", "What car do I own?", "Do you remember what I drive?", "What is my vehicle?",
            "Can you tell me what car I drive?", "What kind of car is mine?", "Which car do I drive?",
            "What do I drive these days?"],
    "allergy": ["What am I allergic to?", "What's my allergy?", "Do you remember my allergy?",
                "Can you tell me what I'm allergic to?", "What gives me an allergic reaction?",
                "Which allergy do I have?", "What must I avoid because I'm allergic?", "Remind me of my allergy."],
    "health": ["What's my health condition?", "What condition do I have?", "Do you remember my health issue?",
               "Can you tell me my diagnosis?", "What is wrong with my health?", "What illness was I diagnosed with?",
               "What medical problem do I have?", "What do I take medicine for?"],
}
# Frames for training statements ({t}) and questions ({q}); context sentences said in passing.
STATE_PREFIX = ["By the way, ", "Oh, and ", "Fun fact: ", "So, ", "Just so you know, ", "Also, ", "Well, ",
                "You know what? ", "Anyway, ", "Honestly, ", "Okay, ", "Hey, "]
STATE_SUFFIX = [" Just so you know.", " I thought I'd mention it.", " Anyway.", " Isn't that funny?",
                " Remember that.", " That's me."]
PASSING = ["I had a busy day.", "It's been a long week.", "The weather is nice here.", "I'm having tea right now.",
           "Work was hard today.", "I just got home.", "It's late, but I can't sleep.", "I'm in a good mood."]
ASK_PREFIX = ["Quick question: ", "Hey, ", "Can you remind me? ", "I forgot. ", "Remind me, ", "So, ",
              "One more thing: ", "Okay, ", "Tell me, ", "Question: ", "Hmm, ", "Let me test you. ", "Hi again! "]
ASK_SUFFIX = [" Thanks.", " I can't remember.", " Do you know?", " I forgot.", " Please tell me.",
              " Any idea?"]


def _norm(s):
    return re.sub(r"[^a-z{}]+", " ", s.lower()).strip()


def _check_heldout():
    for cat, d in CATS.items():
        for key, more in (("state", MORE_STATE), ("ask", MORE_ASK)):
            held = _norm(d[key][-1])
            pool = d[key][:-1] + more[cat] + (EXTRA_ASK[cat] if key == "ask" else [])
            for w in pool:
                assert held not in _norm(w), (cat, w, d[key][-1])


ASK_FRAMES = ["Quick question: {q}", "Hey, {q}", "Can you remind me? {q}", "I forgot. {q}", "{q} Thanks.",
              "{q} I can't remember.", "Remind me, {q}", "So, {q}"]
STATE_FRAMES = ["By the way, {t}", "Oh, and {t}", "Fun fact: {t}", "So, {t}", "{t} Just so you know."]
CORRECTIONS = ["Actually, {t}", "Wait, I was wrong. {t}", "Correction: {t}", "Sorry, I misspoke. {t}",
               "Let me fix that: {t}"]
ACKS = ["Got it.", "Thanks for telling me.", "Good to know!", "I'll remember that.", "Noted.",
        "That's nice.", "Okay, thanks."]
CHITCHAT = [
    ("Hello!", "Hello! How can I help you today?"),
    ("Hi there.", "Hi! What can I do for you?"),
    ("How are you today?", "I'm doing well, thanks for asking. How are you?"),
    ("Thanks for your help.", "You're welcome!"),
    ("Good morning!", "Good morning! I hope you slept well."),
    ("The weather is nice today.", "That sounds lovely. Enjoy the sunshine."),
    ("I'm a bit tired.", "I'm sorry to hear that. Maybe a short break would help."),
    ("Can you help me plan my week?", "Of course. What do you have coming up?"),
    ("Tell me something nice.", "You are doing better than you think."),
    ("What can you do?", "I can chat with you and remember what you tell me."),
    ("Who are you?", "I am a small assistant. I remember what you tell me."),
    ("I had a long day at work.", "That sounds exhausting. I hope you can rest tonight."),
    ("Goodbye!", "Goodbye! Talk to you soon."),
    ("Do you like music?", "I don't listen to music, but I like hearing what you enjoy."),
    ("It is raining again.", "Rainy days are good for staying in with a cup of tea."),
    ("I finished my book.", "Well done! Did you like the ending?"),
    ("Any advice for a busy day?", "Make a short list and start with the hardest task."),
    ("I'm bored.", "Maybe try a walk or call a friend."),
    ("Good night.", "Good night! Sleep well."),
    ("What day is it?", "I don't have a calendar, but you can tell me your plans."),
]
PK_INTROS = ["There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. "
             "I will quiz you about the important information there.",
             "Read the following text carefully. Somewhere in it there is a pass key that you must remember.",
             "Below is a long passage. One sentence in it holds a key. Remember the key.",
             "Here is some text with a secret number in it.", "Memorize the key hidden in this passage.",
             "Pay attention to the important detail in the text below."]
PK_NEEDLES = ["The pass key is {k}. Remember it. {k} is the pass key.", "The pass key is {k}.",
              "Remember this pass key: {k}.", "Important: the pass key is {k}. {k} is the pass key.",
              "The secret key is {k}.", "Note that the pass key is {k}.", "Pass key: {k}.",
              "My pass key is {k}, remember it."]
PK_QUESTIONS = ["What is the pass key?", "What is the pass key mentioned in the text?", "What was the key?",
                "Do you remember the pass key?",
                "Tell me the pass key.", "Which pass key did the text hold?"]
PK_ANSWER = "The pass key is {k}."


# The training pools of every category (the held-out last wording excluded), checked at import.
TRAIN_STATE = {c: d["state"][:-1] + MORE_STATE[c] for c, d in CATS.items()}
TRAIN_ASK = {c: d["ask"][:-1] + EXTRA_ASK[c] + MORE_ASK[c] for c, d in CATS.items()}


def _check_heldout_all():
    """no held-out statement or question wording (normalised) is, or is inside, a training wording of
    either kind, nor a frame-free training core"""
    for cat, d in CATS.items():
        train = [_norm(w) for w in TRAIN_STATE[cat] + TRAIN_ASK[cat]]
        for held in (_norm(d["state"][-1]), _norm(d["ask"][-1])):
            for w in train:
                assert held not in w, (cat, held, w)


_check_heldout()
_check_heldout_all()


# -- the dev split (session 4) ---------------------------------------------------------------------
# A second held-out set, for tuning decisions: two statement and two question wordings a kind, two
# corrections and a few values of every kind, written after the session-3 run (so the shipped model never
# saw them either) and never produced for training (checked at import, with the held-out split, below).
# chat_eval.py --split dev measures on it, unframed like the held-out split; the acceptance held-out split
# (the last wording of every list, every fourth value) is unchanged and looked at once, at the end.
DEV_STATE = {
    "family": ["{v} is what everyone calls my {s}.", "Last weekend I visited my {s} {v}."],
    "pet": ["{v} is the {s} we keep at home.", "Every morning I walk my {s} {v}."],
    "job": ["By trade I am {a}.", "People hire me because I'm {a}."],
    "employer": ["{v} pays my salary.", "Every morning I take the bus to my office at {v}."],
    "hometown": ["I was a kid in {v} before we moved away.", "{v} is the town I come from."],
    "city": ["{v} has been my home for two years.", "Currently I rent a flat in {v}."],
    "hobby": ["Whenever I get a free hour, I do some {v}.", "{v} is what I do to relax."],
    "food": ["{v} is the dish I'd pick for my last meal.", "If I could, I'd have {v} for every meal."],
    "dislike": ["Whenever I see {v} on my plate, I push them away.", "{v}? No thanks, I detest them."],
    "plan": ["{v} is the day of my {s}.", "Next up on my calendar: my {s} on {v}."],
    "car": ["{v} is the car I take to work.", "Every day I commute in my {v}."],
    "allergy": ["{v} give me a rash because I'm allergic.", "One allergy I have is to {v}."],
    "health": ["{v} runs in my family and I have it too.", "Doctors treat me for {v}."],
}
DEV_ASK = {
    "family": ["Which person is my {s}?", "What's the first name of my {s}?"],
    "pet": ["Which name does my {s} answer to?", "How do I call my {s}?"],
    "job": ["What is my trade?", "Which job do I have?"],
    "employer": ["Which company am I with?", "For which firm do I work?"],
    "hometown": ["In which town did I spend my early years?", "What place did I grow up in?"],
    "city": ["Where am I living these days?", "Which city is my current home?"],
    "hobby": ["What do I like doing when I'm free?", "Which activity is my hobby?"],
    "food": ["What dish do I like best?", "What would I eat every day?"],
    "dislike": ["Which food do I never want on my plate?", "What do I find gross to eat?"],
    "plan": ["When will my {s} take place?", "What's the date for my {s}?"],
    "car": ["Which vehicle do I drive?", "What kind of car do I own?"],
    "allergy": ["Which thing am I allergic to?", "What causes my allergy?"],
    "health": ["Which illness do I live with?", "What health issue do I have?"],
}
DEV_CORRECTIONS = ["Oops, I got that wrong. {t}", "No wait, {t}"]
DEV_VALUES = {
    "family": ["Yolanda", "Quentin", "Xavier", "Bianca", "Gordon", "Imogen", "Lionel", "Marcus"],
    "pet": ["Nugget", "Sprout", "Tango", "Pumpkin", "Domino", "Waldo"],
    "job": ["surgeon", "economist", "tailor", "welder", "florist", "veterinarian"],
    "employer": ["Willow Creek Dairy", "Northstar Logistics", "Copper Hill Mining", "Bluebird Travel",
                 "Quarry Lane Books", "Stonegate Bank"],
    "hometown": ["Helsinki", "Warsaw", "Seoul", "Cairo", "Lima", "Osaka", "Zurich", "Belfast"],
    "city": ["Helsinki", "Warsaw", "Seoul", "Cairo", "Lima", "Osaka", "Zurich", "Belfast"],
    "hobby": ["archery", "rowing", "juggling", "kayaking", "fencing", "bowling"],
    "food": ["gnocchi", "quiche", "brisket", "enchiladas", "couscous", "goulash"],
    "dislike": ["artichokes", "turnips", "sardines", "prunes", "kale", "leeks"],
    "plan": ["January 2", "March 9", "May 27", "July 16", "September 1", "November 24"],
    "car": ["orange Skoda", "brown Lexus", "purple Dodge", "gold Audi", "beige Buick", "maroon Saab"],
    "allergy": ["mold", "nickel", "ragweed", "kiwis", "mustard", "horses"],
    "health": ["gout", "psoriasis", "tinnitus", "a bad hip", "scoliosis", "vertigo"],
}

# -- the statement/question grammar (data version 4, session 4) -------------------------------------
# The session-3 model answered held-out values in training wordings 87% of the time but 47% in the
# held-out wordings: an unseen question form was read as another kind ("Where was I raised?" -> "You
# dislike ..."), a value inside an unseen statement form was copied badly ("I suffer from arthritis" ->
# "You have a bad."), and extraction, which has no question to name the kind, recovered 0 of 17 cars and
# 0 of 18 disliked foods in their held-out forms. Version 4 makes every kind's forms a grammar: a core
# (the session-3 pools, more verbs, and copular forms over several nouns of the kind: "My {N} is {v}.",
# "{v} is my {N}.", "{v}: that's my {N}.") under a transform (fronted time, embedded in "You should know
# that ...", a trailing clause, a contrast, the session-3 frames), and questions the same way. None of its
# words that appear in a held-out or dev wording is new (_check_split_words): it widens the forms, it does
# not bring the evaluation's words into training.
NOUNS = {
    "family": ["{s}", "{s}'s name"], "pet": ["{s}", "{s}'s name"],
    "job": ["job", "occupation", "work", "career", "line of work"],
    "employer": ["employer", "company", "workplace", "firm"],
    "hometown": ["home town", "birthplace", "town of origin"],
    "city": ["city", "city of residence", "address", "town these days"],
    "hobby": ["hobby", "pastime", "favorite thing to do", "free-time pursuit", "favorite way to unwind"],
    "food": ["favorite food", "favorite dish", "favorite meal", "comfort food", "go-to meal"],
    "dislike": ["least favorite food", "most hated food", "worst food"],
    "plan": ["{s} date", "{s}"],
    "car": ["car", "vehicle", "ride", "daily driver"],
    "allergy": ["allergy", "main allergy", "worst allergy"],
    "health": ["health condition", "condition", "illness", "medical condition", "diagnosis", "chronic illness"],
}
# how the value reads after "is": the job with its article, a car as "a ..."
VALUE_FORM = {"job": "{a}", "car": "a {v}"}
COPULA_STATE = ["My {N} is {V}.", "{V} is my {N}.", "{V}: that's my {N}.", "My {N}? {V}.", "As for my {N}, it's {V}.",
                "In case you wonder, my {N} is {V}.", "{V}, that is my {N}.", "I'd say my {N} is {V}.",
                "Write this down: my {N} is {V}.", "The thing to know about my {N}: {V}."]
COPULA_ASK = ["What is my {N}?", "What's my {N}?", "Do you remember my {N}?", "Tell me my {N}.",
              "Can you recall my {N}?", "What did I say my {N} is?", "Do you know what my {N} is?",
              "Remind me what my {N} is.", "What was my {N} again?", "I told you my {N}. What is it?",
              "My {N} is what?", "Any idea what my {N} is?", "Say my {N}, please."]
# more verbs a kind (training only), beside TRAIN_STATE / TRAIN_ASK
GRAMMAR_STATE = {
    "family": ["I called my {s} {v} this morning.", "My {s}, {v}, lives nearby.", "I texted {v}, my {s}.",
               "Dinner with my {s} {v} was fun.", "{v} and I are close; {v} is my {s}."],
    "pet": ["I brush my {s} {v} every night.", "The {s} I have is named {v}.", "{v} the {s} sleeps on my bed.",
            "My {s}, whose name is {v}, loves treats.", "I walk {v}, my {s}, after work."],
    "job": ["I work full time as {a}.", "My career is as {a}.", "I'm working as {a} these days.",
            "I got hired as {a}.", "I have a job as {a}."],
    "employer": ["I'm on the staff of {v}.", "I joined {v} a while ago.", "My desk is at {v}.",
                 "I report to work at {v}.", "{v} hired me last year."],
    "hometown": ["I was raised in {v}.", "As a child I lived in {v}.", "I lived in {v} when I was young.",
                 "I grew up in a small house in {v}.", "{v} is where I was born."],
    "city": ["I reside in {v}.", "I've lived in {v} for a year now.", "{v} is my city these days.",
             "My apartment is in {v}.", "I moved to {v} for work."],
    "hobby": ["I do {v} for fun.", "I practice {v} on weekends.", "My free time goes to {v}.",
              "I've taken up {v}.", "{v} keeps me happy."],
    "food": ["{v} is what I order every time.", "I'd choose {v} over anything.", "I never get tired of {v}.",
             "Give me {v} any day.", "I cook {v} as often as I can."],
    "dislike": ["I can't bear {v}.", "{v} taste awful to me.", "I always take {v} out of my food.",
                "I'd rather starve than eat {v}.", "{v} are the worst."],
    "plan": ["My {s} falls on {v}.", "I'll have my {s} on {v}.", "The date of my {s} is {v}.",
             "{v} is when my {s} is.", "I scheduled my {s} for {v}."],
    "car": ["I get around in a {v}.", "I go to work in a {v}.", "My vehicle is a {v}.", "A {v} is what I drive.",
            "I just got my {v} washed."],
    "allergy": ["I react badly to {v}.", "{v} trigger my allergy.", "I'm allergic, so no {v} for me.",
                "Even a little {v} makes me sick.", "I carry medicine because I'm allergic to {v}."],
    "health": ["I've been diagnosed with {v}.", "I get treated for {v}.", "I have to manage {v}.",
               "{v} is my health condition.", "I take pills for {v}."],
}
GRAMMAR_ASK = {
    "family": ["Who's my {s}?", "What name does my {s} go by?", "Tell me who my {s} is.", "How is my {s} named?"],
    "pet": ["What's the name of my {s}?", "How is my {s} named?", "Which name did I give my {s}?"],
    "job": ["What do I do at work?", "What's my occupation?", "What's my career?", "What job do I do?"],
    "employer": ["Which company do I work at?", "Where am I working?", "Who employs me?", "Which firm do I work at?"],
    "hometown": ["Where did I grow up as a kid?", "Which town am I from originally?", "Where was I born?",
                 "What's my birthplace?"],
    "city": ["Where do I reside?", "Which city do I call home now?", "Where is home for me now?",
             "Where do I live today?"],
    "hobby": ["What's my pastime?", "What do I enjoy doing?", "What do I do in my free time?",
              "How do I like to unwind?"],
    "food": ["What food do I love most?", "What's my favorite dish?", "Which dish do I love?",
             "What do I like eating most?"],
    "dislike": ["Which food do I hate?", "What food can't I stand?", "What should I never be served?",
                "What food do I avoid?"],
    "plan": ["What's the date of my {s}?", "On which date is my {s}?", "When is my {s} happening?",
             "Which day is my {s}?"],
    "car": ["What do I get around in?", "What vehicle do I have?", "What's my vehicle?", "What car have I got?"],
    "allergy": ["What am I allergic to, again?", "What triggers my allergy?", "What should I stay away from?",
                "What allergy have I got?"],
    "health": ["What condition was I diagnosed with?", "What illness have I got?", "What am I treated for?",
               "What health condition have I got?"],
}
# transforms of a core sentence c: a prefix (the core lower-cased after it) or a suffix (the core's full
# stop replaced); the session-3 frames are among them
FRONT = ["Last year, ", "These days, ", "For a while now, ", "At the moment, ", "Nowadays, ", "Since last spring, ",
         "For what it's worth, ", "To be honest, ", "In case it matters, "]
EMBED = ["You should know that ", "I should tell you that ", "I think I told you that ", "My friends know that ",
         "It's true that ", "I guess you could say that ", "Not many know that ", "I forgot to say that "]
CONTRAST = ["It's been a long week, but ", "I'm a bit tired, but ", "Random thought, but ", "This is unrelated, but ",
            "Sorry to change the subject, but "]
TRAIL = [", and I'm happy about it.", ", which is nice.", ", as you may know.", ", believe it or not.",
         ", in case that matters.", ", for what it's worth.", " and that's that.", ", just so you know."]
ASK_EMBED = ["I wonder, ", "I'm curious: ", "Can you tell me: ", "Test time: ", "Without looking back, ",
             "From what I told you, ", "From this chat, "]
RELATED = {"city": ["hometown"], "hometown": ["city"], "job": ["employer"], "employer": ["job"],
           "food": ["dislike", "hobby"], "dislike": ["food", "allergy"], "allergy": ["dislike", "health"],
           "health": ["allergy"], "pet": ["family"], "family": ["pet"], "hobby": ["food"], "plan": ["family"],
           "car": ["job"]}


def _copula(cat, templates):
    vf = VALUE_FORM.get(cat, "{v}")
    return [t.replace("{N}", n).replace("{V}", vf) for t in templates for n in NOUNS[cat]]


def _dedup(ws, drop=()):
    return [w for w in dict.fromkeys(ws) if w not in drop]


# the cores of a kind, drawn in two stages (the copular forms, 30-60 a kind, would otherwise crowd out the
# verbs): verbal forms (session 3's and GRAMMAR_*) and the copular forms that are not among them
VERBAL_STATE = {c: _dedup(TRAIN_STATE[c] + GRAMMAR_STATE[c]) for c in CATS}
VERBAL_ASK = {c: _dedup(TRAIN_ASK[c] + GRAMMAR_ASK[c]) for c in CATS}
COPULAR_STATE = {c: _dedup(_copula(c, COPULA_STATE), VERBAL_STATE[c]) for c in CATS}
COPULAR_ASK = {c: _dedup(_copula(c, COPULA_ASK), VERBAL_ASK[c]) for c in CATS}
GRAMMAR_STATE_CORES = {c: VERBAL_STATE[c] + COPULAR_STATE[c] for c in CATS}
GRAMMAR_ASK_CORES = {c: VERBAL_ASK[c] + COPULAR_ASK[c] for c in CATS}


def grammar_statement(rng, cat):
    """a training statement of version 4: a core of the kind (verbal 60%, copular 40%) under a transform"""
    cores = VERBAL_STATE[cat] if rng.random() < 0.6 else COPULAR_STATE[cat]
    t = cap(str(rng.choice(cores)))
    r = rng.random()
    if r < 0.30:
        return t
    if r < 0.42:
        return str(rng.choice(FRONT + STATE_PREFIX)) + low(t)
    if r < 0.52:
        return str(rng.choice(EMBED)) + low(t)
    if r < 0.58:
        return str(rng.choice(CONTRAST)) + low(t)
    if r < 0.70:
        return t[:-1] + str(rng.choice(TRAIL)) if t.endswith(".") else t + str(rng.choice(STATE_SUFFIX))
    if r < 0.78:
        return t + str(rng.choice(STATE_SUFFIX))
    if r < 0.89:
        return str(rng.choice(PASSING)) + " " + t
    return t + " " + str(rng.choice(PASSING))


def grammar_question(rng, cat):
    """a training question of version 4: a core (verbal 55%, copular 45%) under a transform"""
    q = str(rng.choice(VERBAL_ASK[cat] if rng.random() < 0.55 else COPULAR_ASK[cat]))
    r = rng.random()
    if r < 0.45:
        return q
    if r < 0.65:
        return str(rng.choice(ASK_PREFIX)) + low(q)
    if r < 0.75:
        return str(rng.choice(ASK_EMBED)) + low(q)
    if r < 0.87:
        return q + str(rng.choice(ASK_SUFFIX))
    return str(rng.choice(PASSING)) + " " + q


def _words(ws):
    return {w for t in ws for w in _norm(t.replace("{s}", " ").replace("{v}", " ").replace("{a}", " ")).split()}


def _check_split_wordings():
    """no held-out or dev wording (normalised) is, or is inside, a training core of either version, nor
    inside a training core under any prefix/suffix transform; the dev wordings are not the held-out ones"""
    frames_pre = [_norm(p) for p in FRONT + STATE_PREFIX + EMBED + CONTRAST + PASSING + ASK_PREFIX + ASK_EMBED]
    frames_suf = [_norm(x) for x in TRAIL + STATE_SUFFIX + ASK_SUFFIX + PASSING]
    s3 = {_norm(w) for c in CATS for w in TRAIN_STATE[c] + TRAIN_ASK[c]}
    for cat, d in CATS.items():
        own_s3 = {_norm(w) for w in TRAIN_STATE[cat] + TRAIN_ASK[cat]}
        cores = {_norm(w) for o in CATS for w in GRAMMAR_STATE_CORES[o] + GRAMMAR_ASK_CORES[o]}
        dev = [_norm(w) for w in DEV_STATE[cat] + DEV_ASK[cat]]
        for e in [_norm(d["state"][-1]), _norm(d["ask"][-1])] + dev:
            for w in cores:
                # one overlap predates this check: the held-out pet question "What's my {s} called?" is a
                # session-3 training question of the family kind (with another slot); it is left as it was
                # so that the held-out figures stay comparable
                if e not in dev and w in s3 and w not in own_s3:
                    continue
                for x in [w] + [p + " " + w for p in frames_pre] + [w + " " + x for x in frames_suf]:
                    assert f" {e} " not in f" {x} ", (cat, e, x)  # as whole words
        for e in [_norm(w) for w in DEV_STATE[cat] + DEV_ASK[cat]]:
            for h in (_norm(d["state"][-1]), _norm(d["ask"][-1])):
                assert f" {e} " not in f" {h} " and f" {h} " not in f" {e} ", (cat, e, h)
    for c in DEV_CORRECTIONS:
        assert all(_norm(c) not in _norm(t) for t in CORRECTIONS), c


def _check_split_words():
    """version 4 adds no word that a held-out or dev wording uses unless session 3's training pools had it"""
    old = _words([w for c in CATS for w in TRAIN_STATE[c] + TRAIN_ASK[c]] + STATE_PREFIX + STATE_SUFFIX
                 + ASK_PREFIX + ASK_SUFFIX + PASSING + CORRECTIONS[:-1] + ACKS + [x for p in CHITCHAT for x in p])
    new = _words([w for c in CATS for w in GRAMMAR_STATE_CORES[c] + GRAMMAR_ASK_CORES[c]] + FRONT + EMBED
                 + CONTRAST + TRAIL + ASK_EMBED)
    evals = _words([w for c, d in CATS.items() for w in [d["state"][-1], d["ask"][-1]] + DEV_STATE[c] + DEV_ASK[c]]
                   + [CORRECTIONS[-1]] + DEV_CORRECTIONS)
    bad = sorted((new & evals) - old)
    assert not bad, bad


def _check_dev_values():
    for c, vs in DEV_VALUES.items():
        for v in vs:
            assert v not in CATS[c]["values"], (c, v)


_check_split_wordings()
_check_split_words()
_check_dev_values()


class Fact:
    def __init__(self, cat, slot, value, rng, split_name, version=3):
        self.cat, self.slot, self.value = cat, slot, value
        self.c = CATS[cat]
        self.held = split_name == "heldout"
        # where the statement and the question wordings come from: "heldout", "dev" or "train"
        # (chat_eval.py --wordings train-state/train-ask mixes them, a diagnostic)
        self.src_state = self.src_ask = split_name if split_name in ("heldout", "dev") else "train"
        self.rng = rng
        self.aug = False  # training-only wordings (ChatGen.augment)
        self.version = version  # 4: the statement/question grammar (GRAMMAR_*) on top of version 3's pools

    def fill(self, t, v=None, w=None):
        v = self.value if v is None else v
        out = t.replace("{s}", self.slot).replace("{a}", art(v)).replace("{v}", v)
        return out.replace("{w}", w) if w is not None else out

    def statement(self, v=None):
        if self.src_state == "dev":
            return cap(self.fill(str(self.rng.choice(DEV_STATE[self.cat])), v))
        if not self.aug or self.src_state == "heldout":
            return cap(self.fill(str(self.rng.choice(wsplit(self.c["state"], self.src_state == "heldout"))), v))
        rng = self.rng
        if self.version >= 4:  # a sentence after "? " starts with a capital ("My car? A red Ford.")
            t = cap(self.fill(grammar_statement(rng, self.cat), v))
            return re.sub(r"\? ([a-z])", lambda m: "? " + m.group(1).upper(), t)
        t = cap(self.fill(str(rng.choice(TRAIN_STATE[self.cat])), v))
        r = rng.random()
        if r < 0.2:
            t = str(rng.choice(STATE_PREFIX)) + low(t)
        elif r < 0.3:
            t = t + str(rng.choice(STATE_SUFFIX))
        elif r < 0.4:
            t = str(rng.choice(PASSING)) + " " + t
        elif r < 0.48:
            t = t + " " + str(rng.choice(PASSING))
        return t

    def question(self):
        if self.src_ask == "dev":
            return self.fill(str(self.rng.choice(DEV_ASK[self.cat])))
        if not self.aug or self.src_ask == "heldout":
            return self.fill(str(self.rng.choice(wsplit(self.c["ask"], self.src_ask == "heldout"))))
        rng = self.rng
        if self.version >= 4:
            return cap(self.fill(grammar_question(rng, self.cat)))
        q = self.fill(str(rng.choice(TRAIN_ASK[self.cat])))
        r = rng.random()
        if r < 0.25:
            q = cap(str(rng.choice(ASK_PREFIX)) + low(q))
        elif r < 0.37:
            q = q + str(rng.choice(ASK_SUFFIX))
        elif r < 0.45:
            q = str(rng.choice(PASSING)) + " " + q
        return q

    def answer(self):
        return cap(self.fill(self.c["answer"]))

    def summary(self):
        return self.fill(self.c["summary"])

    def key(self):
        return (self.cat, self.slot)


def cap(s):
    return s[0].upper() + s[1:]


def low(s):
    return s if s.startswith("I ") or s.startswith("I'") else s[0].lower() + s[1:]


class ChatGen:
    def __init__(self, sp, sentences, split_name="train", version=4):
        """sp: SentencePiece processor of engram-tiny; sentences: Brown sentences of the same split;
        version: 3 replays session 3's training data (the shipped model's), 4 adds the grammar of
        statement and question forms and the harder task mixes (v4 below)"""
        self.sp = sp
        self.sent = sentences
        self.split = split_name
        self.version = version
        # "valid": the validation split for tuning decisions: training names, values and wordings
        # (with the training-only wordings on), drawn from other seeds than any training batch.
        # "dev": the dev split (DEV_* wordings and values, never trained on), protocol as held-out.
        self.held = split_name == "heldout"
        self.dev = split_name == "dev"
        # version 4's task mixes are training data; held-out and dev conversations are always built as
        # in session 3, so that their figures stay comparable across versions
        self.v4 = version >= 4 and split_name in ("train", "valid")
        self.vocab = sp.get_piece_size()
        self.im_start, self.im_end = self.vocab, self.vocab + 1
        self.vals = {c: split(d["values"], self.held) for c, d in CATS.items()}
        if self.dev:
            self.vals = {c: list(DEV_VALUES[c]) for c in CATS}
        # Open values (training only): a closed list of a few dozen values is memorised instead of
        # copied (measured: 90% recall of training values, 20% of held-out ones after 700 steps),
        # so most training facts take a made-up value that can only be copied from the context.
        held_vals = {v.lower() for d in CATS.values() for v in split(d["values"], True)}
        if version >= 4:  # the dev values are never trained on either
            held_vals |= {v.lower() for vs in DEV_VALUES.values() for v in vs}
            held_vals |= {w.lower() for vs in DEV_VALUES.values() for v in vs for w in v.split()
                          if w[0].isupper() and w not in MONTHS}
        words = sorted({w for t in sentences[:20000] for w in re.findall(r"[A-Za-z]+", t)})
        self.lower = [w for w in words if w.islower() and 4 <= len(w) <= 10 and w not in held_vals]
        self.upper = [w for w in words if w[0].isupper() and w[1:].islower() and 4 <= len(w) <= 10
                      and w.lower() not in held_vals]
        self.held_vals = held_vals
        self.augment = split_name == "valid"  # set by the trainer: the training-only wordings in use
        self.train_wordings = False  # set by chat_eval.py --wordings train / train-state / train-ask

    # -- facts ----------------------------------------------------------------
    def facts(self, rng, n, cats=None):
        """n facts of distinct (category, slot) keys"""
        out, keys = [], set()
        names = list(CATS) if cats is None else cats
        while len(out) < n:
            cat = str(rng.choice(names))
            slot = str(rng.choice(CATS[cat]["slots"]))
            if (cat, slot) in keys:
                continue
            keys.add((cat, slot))
            out.append(self.fact(rng, cat, slot))
        return out

    def fact(self, rng, cat, slot, avoid=()):
        f = Fact(cat, slot, self.value(rng, cat, avoid), rng, self.split, self.version)
        f.aug = self.augment and not self.held and not self.dev
        # diagnostics: the split's values in the training wordings (both, or statements / questions only)
        if self.train_wordings in (True, "state"):
            f.src_state = "train"
        if self.train_wordings in (True, "ask"):
            f.src_ask = "train"
        return f

    def corrections(self):
        return DEV_CORRECTIONS if self.dev else wsplit(CORRECTIONS, self.held)

    def other_value(self, rng, f):
        return self.value(rng, f.cat, (f.value,))

    def value(self, rng, cat, avoid=()):
        while True:
            if self.held or self.dev or rng.random() < 0.35:
                v = str(rng.choice(self.vals[cat]))
            else:
                v = self.open_value_v4(rng, cat) if self.v4 else self.open_value(rng, cat)
            if v not in avoid and (self.held or self.dev or v.lower() not in self.held_vals):
                return v

    def open_value(self, rng, cat):
        """a made-up value of the category's shape: syllable names, Brown words, dates"""
        if cat in ("family", "pet", "city", "hometown"):
            if rng.random() < 0.5:
                return str(rng.choice(self.upper))
            n = int(rng.integers(2, 4))
            return "".join(str(rng.choice(SYLLABLES)) for _ in range(n)).capitalize()
        if cat == "employer":
            return f"{rng.choice(self.upper)} {rng.choice(COMPANY_KINDS)}"
        if cat == "car":
            make = "".join(str(rng.choice(SYLLABLES)) for _ in range(2)).capitalize()
            return f"{rng.choice(COLORS)} {make if rng.random() < 0.5 else rng.choice(self.upper)}"
        if cat == "plan":
            return f"{rng.choice(MONTHS)} {int(rng.integers(1, 29))}"
        w = str(rng.choice(self.lower))
        return w if cat != "health" or rng.random() < 0.5 else "a bad " + w

    def open_value_v4(self, rng, cat):
        """version 4: as open_value, with multi-word values of every kind (a value's end is found, not
        guessed: the session-3 model copied "Bright Star Media" as "Bright Star Munich") and no fixed
        "a bad" prefix for conditions (it answered "You have a bad ..." to every unseen health statement)"""
        r = rng.random()
        if cat == "employer" and r < 0.4:
            return f"{rng.choice(self.upper)} {rng.choice(self.upper)} {rng.choice(COMPANY_KINDS)}"
        if cat == "health":
            w = str(rng.choice(self.lower))
            if r < 0.55:
                return w
            if r < 0.65:
                return "a bad " + w
            if r < 0.8:
                return f"{rng.choice(['chronic', 'mild', 'severe', 'high'])} {w}"
            return f"{w} {rng.choice(self.lower)}"
        if cat in ("hobby", "food", "dislike", "allergy", "job") and r < 0.2:
            return f"{rng.choice(self.lower)} {rng.choice(self.lower)}"
        if cat in ("city", "hometown") and r < 0.15:
            return f"{rng.choice(['New', 'San', 'Port', 'Lake', 'North', 'East'])} {rng.choice(self.upper)}"
        return self.open_value(rng, cat)

    def related_fact(self, rng, cat, keys):
        """a fact of a kind near cat (another slot of it, or a related kind: city/home town, job/employer,
        food/disliked food ...) whose key is not in keys, or None"""
        cands = [(cat, s) for s in CATS[cat]["slots"] if s] + [(o, s) for o in RELATED[cat] for s in CATS[o]["slots"]]
        cands = [k for k in cands if k not in keys]
        if not cands:
            return None
        c, s = cands[int(rng.integers(0, len(cands)))]
        return self.fact(rng, c, s)

    def chit(self, rng):
        u, a = CHITCHAT[int(rng.choice(split(list(range(len(CHITCHAT))), self.held)))]
        return [("user", u), ("assistant", a)]

    # -- tasks: each returns a list of (role, content) messages ---------------
    def recall(self, rng, n_facts=None, n_questions=None):
        """facts stated (some corrected), chit-chat between, questions at the end.
        Returns messages and the (fact, answered-by-value) list of the questions asked."""
        n = int(rng.integers(1, 5)) if n_facts is None else n_facts
        facts = self.facts(rng, n)
        msgs = [("system", SYSTEM_PLAIN)] if rng.random() < 0.5 else []
        i = 0
        while i < len(facts):
            if rng.random() < 0.25:
                msgs += list(self.chit(rng))
            f = facts[i]
            if i + 1 < len(facts) and rng.random() < 0.25:  # two facts in one message
                g = facts[i + 1]
                a, b = f.statement(), g.statement()
                if self.v4 and a.endswith(".") and rng.random() < 0.5:  # ... and in one sentence
                    msgs += [("user", a[:-1] + ", and " + low(b)), ("assistant", str(rng.choice(ACKS)))]
                else:
                    msgs += [("user", a + " " + b), ("assistant", str(rng.choice(ACKS)))]
                i += 2
                continue
            ack = str(rng.choice(ACKS)) if rng.random() < 0.6 else "Got it: " + low(f.answer())
            if rng.random() < 0.15:  # stated wrongly first, then corrected
                wrong = self.other_value(rng, f)
                msgs += [("user", f.statement(wrong)), ("assistant", str(rng.choice(ACKS)))]
                corr = str(rng.choice(self.corrections()))
                msgs += [("user", corr.replace("{t}", low(f.statement()))), ("assistant", ack)]
            else:
                msgs += [("user", f.statement()), ("assistant", ack)]
            i += 1
        if rng.random() < 0.3:
            msgs += list(self.chit(rng))
        nq = int(rng.integers(1, min(3, len(facts)) + 1)) if n_questions is None else n_questions
        asked = []
        for f in [facts[int(j)] for j in rng.permutation(len(facts))[:nq]]:
            msgs += [("user", f.question()), ("assistant", f.answer())]
            asked.append(f)
        if n_questions is None and rng.random() < (0.25 if self.v4 else 0.1):  # something never said
            keys = {f.key() for f in facts}
            # version 4: mostly a kind near a stated one (home town when the city was said)
            g = self.related_fact(rng, facts[0].cat, keys) if self.v4 and rng.random() < 0.6 else None
            g = g or self.facts(rng, 1)[0]
            if g.key() not in keys:
                msgs += [("user", g.question()), ("assistant", ABSTAIN)]
        return msgs, asked

    def memory_block(self, sums):
        return "\n".join([MEMORY_HEAD] + [f"[{i + 1}] {s}" for i, s in enumerate(sums)] + [MEMORY_TAIL])

    def memory(self, rng, n_mem=None, holds=None):
        """-> messages, the fact asked about, index (1-based) of the memory that holds it or 0"""
        if self.v4:
            return self.memory_v4(rng, n_mem, holds)
        n = int(rng.integers(1, 7)) if n_mem is None else n_mem
        holds = (rng.random() < 0.65) if holds is None else holds
        facts = self.facts(rng, n + 1)
        target, others = facts[0], facts[1:]
        if holds:
            pos = int(rng.integers(0, n))
            mems = others[:pos] + [target] + others[pos + 1:]
        else:
            mems = others
            # a near miss (same category, another slot) is the hard case of abstention
            if target.c["slots"] != [""] and rng.random() < 0.5:
                slot = str(rng.choice([s for s in target.c["slots"] if s != target.slot]))
                if (target.cat, slot) not in {m.key() for m in others}:
                    mems = others[:-1] + [self.fact(rng, target.cat, slot)]
                    mems = [mems[int(j)] for j in rng.permutation(len(mems))]
            pos = -1
        msgs = [("system", self.memory_block([m.summary() for m in mems]))]
        if rng.random() < 0.2:
            msgs += list(self.chit(rng))
        ans = target.answer()[:-1] + f" [{pos + 1}]." if holds else ABSTAIN
        msgs += [("user", target.question()), ("assistant", ans)]
        return msgs, target, pos + 1

    def memory_v4(self, rng, n_mem=None, holds=None):
        """version 4: abstention and citation were the weak parts (held-out abstention 48%, citation
        65.5%; the model abstained for a near miss of the same kind but answered "Where was I raised?"
        from "User grew up in ..." or a made-up value otherwise). Negatives are 45% (was 35%), three in
        four hold a memory of a near kind (another slot, or a related kind: city/home town, job/employer,
        food/disliked food ...), positives hold one 40% of the time, and a third of the conversations go
        on with a second question (another memory, or one none holds): twice the citations a sample."""
        n = int(rng.integers(1, 7)) if n_mem is None else n_mem
        holds = (rng.random() < 0.55) if holds is None else holds
        facts = self.facts(rng, n + 1)
        target, others = facts[0], facts[1:]
        near = None
        if rng.random() < (0.4 if holds else 0.75) and (not holds or n > 1):
            near = self.related_fact(rng, target.cat, {f.key() for f in facts})
            if near is not None:
                others = [near] + others[1:]
                others = [others[int(j)] for j in rng.permutation(len(others))]
        if holds:  # the answer takes the place of one of the others, never of the near-kind one
            free = [i for i, m in enumerate(others) if m is not near]
            pos = free[int(rng.integers(0, len(free)))]
            mems = others[:pos] + [target] + others[pos + 1:]
        else:
            mems = [others[int(j)] for j in rng.permutation(len(others))]
            pos = -1
        msgs = [("system", self.memory_block([m.summary() for m in mems]))]
        if rng.random() < 0.2:
            msgs += list(self.chit(rng))
        ans = target.answer()[:-1] + f" [{pos + 1}]." if holds else ABSTAIN
        msgs += [("user", target.question()), ("assistant", ans)]
        if rng.random() < 0.35:  # a second question
            keys = {m.key() for m in mems}
            if rng.random() < 0.6:
                j = int(rng.integers(0, len(mems)))
                msgs += [("user", mems[j].question()), ("assistant", mems[j].answer()[:-1] + f" [{j + 1}].")]
            else:
                g = self.related_fact(rng, mems[0].cat, keys) if rng.random() < 0.5 else None
                g = g or self.facts(rng, 1)[0]
                if g.key() not in keys:
                    msgs += [("user", g.question()), ("assistant", ABSTAIN)]
        return msgs, target, pos + 1

    def extraction_conv(self, rng, n_facts=None):
        """a finished conversation, its numbered rendering and the expected memories"""
        n = int(rng.integers(1, 6 if self.v4 else 5)) if n_facts is None else n_facts
        facts = self.facts(rng, n)
        turns, refs = [], {}
        skip = set()
        for k, f in enumerate(facts):
            if k in skip:
                continue
            if rng.random() < (0.35 if self.v4 else 0.3):
                turns += list(self.chit(rng))
            if self.v4 and k + 1 < len(facts) and rng.random() < 0.2:  # version 4: two facts in one turn
                g = facts[k + 1]
                a, b = f.statement(), g.statement()
                text = a[:-1] + ", and " + low(b) if a.endswith(".") and rng.random() < 0.5 else a + " " + b
                turns += [("user", text), ("assistant", str(rng.choice(ACKS)))]
                refs[f.key()] = refs[g.key()] = [len(turns) - 2]
                skip.add(k + 1)
                continue
            if rng.random() < 0.12:
                wrong = self.other_value(rng, f)
                turns += [("user", f.statement(wrong)), ("assistant", str(rng.choice(ACKS)))]
                first = len(turns) - 2
                corr = str(rng.choice(self.corrections()))
                turns += [("user", corr.replace("{t}", low(f.statement()))), ("assistant", str(rng.choice(ACKS)))]
                refs[f.key()] = [first, len(turns) - 2]
            else:
                turns += [("user", f.statement()), ("assistant", str(rng.choice(ACKS)))]
                refs[f.key()] = [len(turns) - 2]
        if rng.random() < 0.3:
            turns += list(self.chit(rng))
        text = "\n".join(f"[{i}] {'User' if r == 'user' else 'Assistant'}: {c}" for i, (r, c) in enumerate(turns))
        mems = [{"summary": f.summary(), "reference": refs[f.key()]} for f in facts]
        return text, facts, mems

    def extract(self, rng, n_facts=None):
        if rng.random() < (0.08 if self.v4 else 0.05) and n_facts is None:  # nothing personal said
            turns = [x for _ in range(int(rng.integers(1, 3))) for x in self.chit(rng)]
            text = "\n".join(f"[{i}] {'User' if r == 'user' else 'Assistant'}: {c}" for i, (r, c) in enumerate(turns))
            facts, mems = [], []
        else:
            text, facts, mems = self.extraction_conv(rng, n_facts)
        out = json.dumps({"extracted_memories": mems})
        return [("system", EXTRACT_SYSTEM), ("user", text), ("assistant", out)], facts, mems

    def addmerge(self, rng, n_mem=None, merge=None):
        """-> messages, expected reply"""
        n = int(rng.integers(1, 8 if self.v4 else 6)) if n_mem is None else n_mem
        merge = (rng.random() < 0.5) if merge is None else merge
        facts = self.facts(rng, n + 1)
        new, mems = facts[0], facts[1:]
        # version 4: the held-out merges took the right summary and the wrong index 51 times in 100 (the
        # decision was right 195/200): half the lists hold a memory of a near kind (home town for a new
        # city) besides the one to merge with, or instead of it for an Add()
        near = None
        if self.v4 and rng.random() < 0.5 and (n > 1 or not merge):
            near = self.related_fact(rng, new.cat, {f.key() for f in facts})
            if near is not None:
                mems = [near] + mems[1:]
                mems = [mems[int(j)] for j in rng.permutation(len(mems))]
        if merge:  # the old memory takes the place of one of the others, never of the near-kind one
            free = [i for i, m in enumerate(mems) if m is not near]
            pos = free[int(rng.integers(0, len(free)))] if self.v4 else int(rng.integers(0, n))
            old = Fact(new.cat, new.slot, self.other_value(rng, new), rng, self.split, self.version)
            mems = mems[:pos] + [old] + mems[pos + 1:]
            merged = new.fill(new.c["multi"], old.value, new.value) if new.c["multi"] else new.summary()
            reply = f"Merge({pos + 1}, \"{merged}\")"
        else:
            reply = "Add()"
        user = "\n".join(["Existing memories:"] + [f"[{i + 1}] {m.summary()}" for i, m in enumerate(mems)]
                         + [f"New memory: {new.summary()}"])
        return [("system", MERGE_SYSTEM), ("user", user), ("assistant", reply)], reply

    def chitchat(self, rng):
        msgs = [("system", SYSTEM_PLAIN)] if rng.random() < 0.5 else []
        for _ in range(int(rng.integers(1, 4))):
            msgs += list(self.chit(rng))
        return msgs

    def passkey(self, rng, n_tokens=None, key=None, depth=None, ib=False):
        """a pass key hidden in about n_tokens tokens of Brown text inside a user message;
        ib: engram-tiny's InfiniteBench wording (a training wording) whatever the split"""
        n_tokens = int(rng.integers(60, 420)) if n_tokens is None else n_tokens
        key = str(rng.integers(10000, 100000)) if key is None or key == "" else key
        if rng.random() < 0.3 and depth is None:
            key = "".join(str(d) for d in rng.integers(0, 10, int(rng.integers(3, 9))))
        depth = rng.random() if depth is None else depth
        intro = str(rng.choice(wsplit(PK_INTROS, self.held)))
        needle = str(rng.choice(wsplit(PK_NEEDLES, self.held))).replace("{k}", key)
        question = str(rng.choice(wsplit(PK_QUESTIONS, self.held)))
        if ib:
            intro, needle, question = PK_INTROS[0], PK_NEEDLES[0].replace("{k}", key), PK_QUESTIONS[0]
        i = int(rng.integers(0, len(self.sent)))
        fill, n = [], 0
        while n < n_tokens:
            s = self.sent[i % len(self.sent)]
            fill.append(s)
            n += len(self.sp.encode(s))
            i += 1
        if n > n_tokens and len(fill) > 1:
            fill = fill[:-1]
        pos = int(round(depth * len(fill)))
        user = " ".join([intro] + fill[:pos] + [needle] + fill[pos:] + [question])
        return [("user", user), ("assistant", PK_ANSWER.replace("{k}", key))], key

    # -- rendering --------------------------------------------------------------
    def encode_messages(self, msgs, add_generation_prompt=False):
        """-> token ids (BOS first), score mask (True where the token is an assistant target)"""
        ids, mask = [BOS], [False]
        for role, content in msgs:
            ids.append(self.im_start)
            mask.append(False)
            head = self.sp.encode(role + "\n")
            body = self.sp.encode(role + "\n" + content)
            assert body[:len(head)] == head, (role, content)
            ids += body
            mask += [False] * len(head) + [role == "assistant"] * (len(body) - len(head))
            ids.append(self.im_end)
            mask.append(role == "assistant")
            nl = self.sp.encode("\n")
            ids += nl
            mask += [False] * len(nl)
        if add_generation_prompt:
            ids.append(self.im_start)
            mask.append(False)
            h = self.sp.encode("assistant\n")
            ids += h
            mask += [False] * len(h)
        return ids, mask

    def prompt_ids(self, msgs):
        """the prompt for generating the last assistant message of msgs"""
        assert msgs[-1][0] == "assistant"
        return self.encode_messages(msgs[:-1], add_generation_prompt=True)[0]

    # the mix of chat rows; memory, extraction and Add/Merge were the weakest held-out tasks of the
    # first shipped model (36%, 16%, 49%), so they weigh more than in its run (0.24, 0.14, 0.12)
    TASKS = {"recall": 0.24, "memory": 0.27, "extract": 0.16, "addmerge": 0.16, "chitchat": 0.04, "passkey": 0.13}

    def sample(self, rng, kind=None):
        if kind is None:
            ks = list(self.TASKS)
            p = np.array([self.TASKS[k] for k in ks])
            kind = ks[int(rng.choice(len(ks), p=p / p.sum()))]
        if kind == "recall":
            return self.recall(rng)[0]
        if kind == "memory":
            return self.memory(rng)[0]
        if kind == "extract":
            return self.extract(rng)[0]
        if kind == "addmerge":
            return self.addmerge(rng)[0]
        if kind == "chitchat":
            return self.chitchat(rng)
        return self.passkey(rng)[0]


CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


def render(msgs, add_generation_prompt=False):
    """the text CHAT_TEMPLATE renders (without BOS, which the engine adds)"""
    t = "".join(f"{IM_START}{r}\n{c}{IM_END}\n" for r, c in msgs)
    return t + (f"{IM_START}assistant\n" if add_generation_prompt else "")
