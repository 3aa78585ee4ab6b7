"""Make the LLM skill sets in assets/llm_skills/ from templates and hand-written tables (no downloads).

Every skill gets >= 120 prompts with a reference answer and scorer data (see backends.llm.skills.SkillItem),
shuffled with a seed derived from SEED and the skill name and cut into a probe half and a test half; a few
probe-side families become the tune split, and hand-written everyday wordings make the probe_paraphrase
(probe side) and test_paraphrase (test side) splits.
Running it twice writes identical files, and every reference is checked to get full marks from its
own scorer (code references run in the sandbox). Usage: python scripts/make_skill_sets.py [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

SEED = 20261130
OUT_DIR = Path(__file__).resolve().parents[1] / "assets" / "llm_skills"
SPLITS = ("probe", "probe_paraphrase", "tune", "test", "test_paraphrase")

# --------------------------------------------------------------------------------------------------
# python_coding: (signature, what it does, reference body, asserts)
# --------------------------------------------------------------------------------------------------
PYTHON_TASKS: list[tuple[str, str, str, list[str]]] = [
    ("add(a, b)", "returns the sum of a and b", "return a + b", ["add(2, 3) == 5", "add(-1, 1) == 0", "add(10, 20) == 30"]),
    ("subtract(a, b)", "returns a minus b", "return a - b", ["subtract(5, 3) == 2", "subtract(0, 4) == -4"]),
    ("multiply(a, b)", "returns the product of a and b", "return a * b", ["multiply(3, 4) == 12", "multiply(-2, 5) == -10", "multiply(7, 0) == 0"]),
    ("square(n)", "returns the square of n", "return n * n", ["square(3) == 9", "square(-4) == 16", "square(0) == 0"]),
    ("cube(n)", "returns the cube of n", "return n ** 3", ["cube(2) == 8", "cube(-3) == -27", "cube(0) == 0"]),
    ("absolute_value(n)", "returns the absolute value of n", "return n if n >= 0 else -n", ["absolute_value(-5) == 5", "absolute_value(3) == 3", "absolute_value(0) == 0"]),
    ("is_even(n)", "returns True if n is even, otherwise False", "return n % 2 == 0", ["is_even(4) is True", "is_even(7) is False", "is_even(0) is True"]),
    ("is_odd(n)", "returns True if n is odd, otherwise False", "return n % 2 == 1", ["is_odd(3) is True", "is_odd(8) is False"]),
    ("is_positive(n)", "returns True if n is greater than zero, otherwise False", "return n > 0", ["is_positive(5) is True", "is_positive(-2) is False", "is_positive(0) is False"]),
    ("is_negative(n)", "returns True if n is less than zero, otherwise False", "return n < 0", ["is_negative(-5) is True", "is_negative(2) is False", "is_negative(0) is False"]),
    ("max_of_two(a, b)", "returns the larger of the two numbers a and b", "return a if a > b else b", ["max_of_two(3, 7) == 7", "max_of_two(9, 2) == 9", "max_of_two(-1, -5) == -1"]),
    ("min_of_two(a, b)", "returns the smaller of the two numbers a and b", "return a if a < b else b", ["min_of_two(3, 7) == 3", "min_of_two(9, 2) == 2", "min_of_two(-1, -5) == -5"]),
    ("max_of_three(a, b, c)", "returns the largest of the three numbers a, b and c", "return max(a, b, c)", ["max_of_three(1, 5, 3) == 5", "max_of_three(9, 2, 4) == 9", "max_of_three(1, 2, 8) == 8"]),
    ("sum_list(numbers)", "returns the sum of all numbers in the list numbers", "return sum(numbers)", ["sum_list([1, 2, 3]) == 6", "sum_list([]) == 0", "sum_list([-1, 1, 5]) == 5"]),
    ("product_list(numbers)", "returns the product of all numbers in the list numbers", "result = 1\n    for n in numbers:\n        result *= n\n    return result", ["product_list([1, 2, 3, 4]) == 24", "product_list([5]) == 5", "product_list([2, 0, 7]) == 0"]),
    ("average(numbers)", "returns the average (arithmetic mean) of a non-empty list of numbers", "return sum(numbers) / len(numbers)", ["average([1, 2, 3]) == 2", "average([4, 4]) == 4", "abs(average([1, 2]) - 1.5) < 1e-9"]),
    ("find_max(numbers)", "returns the largest number in a non-empty list", "return max(numbers)", ["find_max([3, 9, 2]) == 9", "find_max([-5, -2, -8]) == -2", "find_max([7]) == 7"]),
    ("find_min(numbers)", "returns the smallest number in a non-empty list", "return min(numbers)", ["find_min([3, 9, 2]) == 2", "find_min([-5, -2, -8]) == -8", "find_min([7]) == 7"]),
    ("list_length(items)", "returns the number of elements in the list items", "return len(items)", ["list_length([1, 2, 3]) == 3", "list_length([]) == 0"]),
    ("reverse_string(s)", "returns the string s reversed", "return s[::-1]", ["reverse_string('hello') == 'olleh'", "reverse_string('') == ''", "reverse_string('ab') == 'ba'"]),
    ("reverse_list(items)", "returns a new list with the elements of items in reverse order", "return items[::-1]", ["reverse_list([1, 2, 3]) == [3, 2, 1]", "reverse_list([]) == []"]),
    ("is_palindrome(s)", "returns True if the string s reads the same forwards and backwards, otherwise False", "return s == s[::-1]", ["is_palindrome('racecar') is True", "is_palindrome('hello') is False", "is_palindrome('abba') is True"]),
    ("count_vowels(s)", "returns the number of vowels (a, e, i, o, u) in the lowercase string s", "return sum(1 for ch in s if ch in 'aeiou')", ["count_vowels('hello') == 2", "count_vowels('sky') == 0", "count_vowels('banana') == 3"]),
    ("to_upper(s)", "returns the string s in upper case", "return s.upper()", ["to_upper('hello') == 'HELLO'", "to_upper('Abc') == 'ABC'"]),
    ("to_lower(s)", "returns the string s in lower case", "return s.lower()", ["to_lower('HELLO') == 'hello'", "to_lower('AbC') == 'abc'"]),
    ("word_count(sentence)", "returns the number of words in the sentence, where words are separated by spaces", "return len(sentence.split())", ["word_count('the cat sat') == 3", "word_count('hello') == 1", "word_count('a b c d') == 4"]),
    ("factorial(n)", "returns the factorial of the non-negative integer n", "result = 1\n    for i in range(2, n + 1):\n        result *= i\n    return result", ["factorial(0) == 1", "factorial(5) == 120", "factorial(3) == 6"]),
    ("fibonacci(n)", "returns the n-th Fibonacci number, where fibonacci(0) is 0 and fibonacci(1) is 1", "a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a", ["fibonacci(0) == 0", "fibonacci(1) == 1", "fibonacci(10) == 55"]),
    ("is_prime(n)", "returns True if n is a prime number, otherwise False", "if n < 2:\n        return False\n    for d in range(2, int(n ** 0.5) + 1):\n        if n % d == 0:\n            return False\n    return True", ["is_prime(7) is True", "is_prime(9) is False", "is_prime(2) is True", "is_prime(1) is False"]),
    ("gcd(a, b)", "returns the greatest common divisor of the positive integers a and b", "while b:\n        a, b = b, a % b\n    return a", ["gcd(12, 8) == 4", "gcd(7, 3) == 1", "gcd(10, 5) == 5"]),
    ("celsius_to_fahrenheit(c)", "converts a temperature from degrees Celsius to degrees Fahrenheit", "return c * 9 / 5 + 32", ["celsius_to_fahrenheit(0) == 32", "celsius_to_fahrenheit(100) == 212"]),
    ("fahrenheit_to_celsius(f)", "converts a temperature from degrees Fahrenheit to degrees Celsius", "return (f - 32) * 5 / 9", ["fahrenheit_to_celsius(32) == 0", "fahrenheit_to_celsius(212) == 100"]),
    ("sum_of_digits(n)", "returns the sum of the digits of the non-negative integer n", "return sum(int(d) for d in str(n))", ["sum_of_digits(123) == 6", "sum_of_digits(0) == 0", "sum_of_digits(905) == 14"]),
    ("count_digits(n)", "returns how many digits the non-negative integer n has", "return len(str(n))", ["count_digits(123) == 3", "count_digits(7) == 1", "count_digits(10000) == 5"]),
    ("is_leap_year(year)", "returns True if year is a leap year in the Gregorian calendar, otherwise False", "return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)", ["is_leap_year(2024) is True", "is_leap_year(2023) is False", "is_leap_year(1900) is False", "is_leap_year(2000) is True"]),
    ("remove_duplicates(items)", "returns a list of the elements of items without duplicates, keeping the first occurrence order", "result = []\n    for item in items:\n        if item not in result:\n            result.append(item)\n    return result", ["remove_duplicates([1, 2, 1, 3, 2]) == [1, 2, 3]", "remove_duplicates([]) == []"]),
    ("sort_list(numbers)", "returns a new list with the numbers sorted in ascending order", "return sorted(numbers)", ["sort_list([3, 1, 2]) == [1, 2, 3]", "sort_list([]) == []", "sort_list([5, -1]) == [-1, 5]"]),
    ("squares(numbers)", "returns a list with the square of each number in numbers", "return [n * n for n in numbers]", ["squares([1, 2, 3]) == [1, 4, 9]", "squares([]) == []", "squares([-2]) == [4]"]),
    ("even_numbers(numbers)", "returns a list of the even numbers in the list numbers", "return [n for n in numbers if n % 2 == 0]", ["even_numbers([1, 2, 3, 4]) == [2, 4]", "even_numbers([1, 3]) == []"]),
    ("odd_numbers(numbers)", "returns a list of the odd numbers in the list numbers", "return [n for n in numbers if n % 2 == 1]", ["odd_numbers([1, 2, 3, 4]) == [1, 3]", "odd_numbers([2, 4]) == []"]),
    ("sum_even(numbers)", "returns the sum of the even numbers in the list numbers", "return sum(n for n in numbers if n % 2 == 0)", ["sum_even([1, 2, 3, 4]) == 6", "sum_even([1, 3]) == 0"]),
    ("string_length(s)", "returns the number of characters in the string s", "return len(s)", ["string_length('hello') == 5", "string_length('') == 0"]),
    ("concatenate(a, b)", "returns the two strings a and b joined together", "return a + b", ["concatenate('foo', 'bar') == 'foobar'", "concatenate('', 'x') == 'x'"]),
    ("first_element(items)", "returns the first element of the non-empty list items", "return items[0]", ["first_element([4, 5, 6]) == 4", "first_element(['a']) == 'a'"]),
    ("last_element(items)", "returns the last element of the non-empty list items", "return items[-1]", ["last_element([4, 5, 6]) == 6", "last_element(['a']) == 'a'"]),
    ("contains(items, x)", "returns True if x is in the list items, otherwise False", "return x in items", ["contains([1, 2, 3], 2) is True", "contains([1, 2, 3], 5) is False"]),
    ("count_occurrences(items, x)", "returns how many times x appears in the list items", "return items.count(x)", ["count_occurrences([1, 2, 1, 1], 1) == 3", "count_occurrences([], 4) == 0"]),
    ("remove_spaces(s)", "returns the string s with all spaces removed", "return s.replace(' ', '')", ["remove_spaces('a b c') == 'abc'", "remove_spaces('hello world') == 'helloworld'"]),
    ("longest_word(sentence)", "returns the longest word in the sentence (the first one if there is a tie); words are separated by spaces", "return max(sentence.split(), key=len)", ["longest_word('a quick fox') == 'quick'", "longest_word('hi there') == 'there'"]),
    ("greet(name)", "returns the string 'Hello, ' followed by name and an exclamation mark, for example 'Hello, Ann!'", "return 'Hello, ' + name + '!'", ["greet('Ann') == 'Hello, Ann!'", "greet('Bob') == 'Hello, Bob!'"]),
    ("rectangle_area(width, height)", "returns the area of a rectangle with the given width and height", "return width * height", ["rectangle_area(3, 4) == 12", "rectangle_area(5, 5) == 25"]),
    ("square_perimeter(side)", "returns the perimeter of a square with the given side length", "return 4 * side", ["square_perimeter(3) == 12", "square_perimeter(0) == 0"]),
    ("circle_area(r)", "returns the area of a circle of radius r", "import math\n    return math.pi * r * r", ["abs(circle_area(1) - 3.14159) < 0.01", "abs(circle_area(2) - 12.566) < 0.01"]),
    ("is_empty(items)", "returns True if the list items is empty, otherwise False", "return len(items) == 0", ["is_empty([]) is True", "is_empty([1]) is False"]),
    ("merge_lists(a, b)", "returns one list with the elements of list a followed by the elements of list b", "return a + b", ["merge_lists([1, 2], [3]) == [1, 2, 3]", "merge_lists([], []) == []"]),
    ("is_vowel(ch)", "returns True if the lowercase letter ch is a vowel (a, e, i, o, u), otherwise False", "return ch in 'aeiou'", ["is_vowel('a') is True", "is_vowel('b') is False", "is_vowel('u') is True"]),
    ("fizzbuzz(n)", "returns 'FizzBuzz' if n is divisible by 3 and 5, 'Fizz' if only by 3, 'Buzz' if only by 5, and otherwise str(n)", "if n % 15 == 0:\n        return 'FizzBuzz'\n    if n % 3 == 0:\n        return 'Fizz'\n    if n % 5 == 0:\n        return 'Buzz'\n    return str(n)", ["fizzbuzz(15) == 'FizzBuzz'", "fizzbuzz(9) == 'Fizz'", "fizzbuzz(10) == 'Buzz'", "fizzbuzz(7) == '7'"]),
    ("sign(n)", "returns 1 if n is positive, -1 if n is negative and 0 if n is zero", "if n > 0:\n        return 1\n    if n < 0:\n        return -1\n    return 0", ["sign(5) == 1", "sign(-3) == -1", "sign(0) == 0"]),
    ("clamp(x, low, high)", "returns x limited to the range from low to high", "return max(low, min(x, high))", ["clamp(5, 0, 10) == 5", "clamp(-3, 0, 10) == 0", "clamp(12, 0, 10) == 10"]),
    ("is_sorted(numbers)", "returns True if the list numbers is sorted in ascending order, otherwise False", "return all(a <= b for a, b in zip(numbers, numbers[1:]))", ["is_sorted([1, 2, 3]) is True", "is_sorted([3, 1]) is False", "is_sorted([]) is True"]),
    ("count_words_starting_with(sentence, letter)", "returns how many words in the sentence start with the given letter", "return sum(1 for w in sentence.split() if w.startswith(letter))", ["count_words_starting_with('big brown bear eats', 'b') == 3", "count_words_starting_with('cat dog', 'x') == 0"]),
    ("double_list(numbers)", "returns a list with every number in numbers doubled", "return [2 * n for n in numbers]", ["double_list([1, 2, 3]) == [2, 4, 6]", "double_list([]) == []"]),
    ("capitalize_words(sentence)", "returns the sentence with the first letter of every word in upper case", "return ' '.join(w.capitalize() for w in sentence.split())", ["capitalize_words('hello world') == 'Hello World'", "capitalize_words('a b') == 'A B'"]),
    ("minutes_to_seconds(minutes)", "converts a number of minutes to seconds", "return minutes * 60", ["minutes_to_seconds(2) == 120", "minutes_to_seconds(0) == 0"]),
    ("hours_to_minutes(hours)", "converts a number of hours to minutes", "return hours * 60", ["hours_to_minutes(2) == 120", "hours_to_minutes(1) == 60"]),
    ("difference(a, b)", "returns the absolute difference between the numbers a and b", "return abs(a - b)", ["difference(3, 8) == 5", "difference(8, 3) == 5", "difference(4, 4) == 0"]),
    ("first_char(s)", "returns the first character of the non-empty string s", "return s[0]", ["first_char('hello') == 'h'", "first_char('x') == 'x'"]),
    ("last_char(s)", "returns the last character of the non-empty string s", "return s[-1]", ["last_char('hello') == 'o'", "last_char('x') == 'x'"]),
]

# Parametrised families: (signature template, description template, body template, asserts builder, values)
PYTHON_FAMILIES = [
    ("times_{k}(n)", "returns n multiplied by {k}", "return n * {k}",
     lambda k: [f"times_{k}(3) == {3 * k}", f"times_{k}(0) == 0", f"times_{k}(-2) == {-2 * k}"], range(2, 13)),
    ("add_{k}(n)", "returns n plus {k}", "return n + {k}",
     lambda k: [f"add_{k}(1) == {1 + k}", f"add_{k}(0) == {k}", f"add_{k}(-{k}) == 0"], range(1, 11)),
    ("is_divisible_by_{k}(n)", "returns True if n is divisible by {k}, otherwise False", "return n % {k} == 0",
     lambda k: [f"is_divisible_by_{k}({k * 3}) is True", f"is_divisible_by_{k}({k * 3 + 1}) is False", f"is_divisible_by_{k}(0) is True"], range(2, 11)),
    ("repeat_{k}(s)", "returns the string s repeated {k} times", "return s * {k}",
     lambda k: [f"repeat_{k}('ab') == {'ab' * k!r}", f"repeat_{k}('') == ''"], range(2, 7)),
    ("count_{c}(s)", "returns how many times the letter '{c}' appears in the string s", "return s.count('{c}')",
     lambda c: [f"count_{c}('{c}x{c}y{c}') == 3", f"count_{c}('zzz') == 0", f"count_{c}('') == 0"], "aeiost"),
    ("first_{k}(items)", "returns a list of the first {k} elements of the list items", "return items[:{k}]",
     lambda k: [f"first_{k}(list(range(10))) == {list(range(k))}", "first_%d([]) == []" % k], range(1, 6)),
    ("last_{k}_chars(s)", "returns the last {k} characters of the string s", "return s[-{k}:]",
     lambda k: [f"last_{k}_chars('abcdefgh') == {'abcdefgh'[-k:]!r}"], range(2, 6)),
    ("power_{k}(x)", "returns x raised to the power {k}", "return x ** {k}",
     lambda k: [f"power_{k}(2) == {2 ** k}", f"power_{k}(3) == {3 ** k}", f"power_{k}(1) == 1"], range(2, 6)),
    ("count_greater_than_{k}(numbers)", "returns how many numbers in the list numbers are greater than {k}",
     "return sum(1 for n in numbers if n > {k})",
     lambda k: [f"count_greater_than_{k}([{k - 1}, {k}, {k + 1}, {k + 5}]) == 2", f"count_greater_than_{k}([]) == 0"], (0, 5, 10, 100)),
    ("keep_above_{k}(numbers)", "returns a list of the numbers in the list numbers that are greater than {k}",
     "return [n for n in numbers if n > {k}]",
     lambda k: [f"keep_above_{k}([{k - 1}, {k}, {k + 1}, {k + 5}]) == [{k + 1}, {k + 5}]", f"keep_above_{k}([]) == []"], (0, 5, 10, 50)),
    ("starts_with_{c}(word)", "returns True if the string word starts with the letter '{c}', otherwise False",
     "return word.startswith('{c}')",
     lambda c: [f"starts_with_{c}('{c}pple') is True", f"starts_with_{c}('zoo') is False"], "abst"),
]
PYTHON_PROMPTS = (
    "Write a Python function `{sig}` that {desc}.",
    "Write a Python function called `{sig}` that {desc}.",
    "In Python, write a function `{sig}` that {desc}.",
)


def build_python_coding(rng: random.Random) -> list[dict]:
    tasks = [(sig, desc, body, asserts, sig.split("(")[0]) for sig, desc, body, asserts in PYTHON_TASKS]
    for sig, desc, body, asserts, values in PYTHON_FAMILIES:
        for value in values:  # every parameter of a family is one family: add_2 and add_7 stay on one side
            fill = {"k": value, "c": value}
            tasks.append((sig.format(**fill), desc.format(**fill), body.format(**fill), asserts(value),
                          sig.split("(")[0]))
    rows = []
    for sig, desc, body, asserts, family in tasks:
        prompt = rng.choice(PYTHON_PROMPTS).format(sig=sig, desc=desc)
        code = f"def {sig}:\n    {body}\n"
        rows.append({"prompt": prompt, "reference": f"```python\n{code}```",
                     "check": "\n".join(f"assert {a}" for a in asserts), "family": family,
                     "key": sig.split("(")[0]})
    return rows


# --------------------------------------------------------------------------------------------------
# story_writing: (character or topic as asked, words of which at least one must be mentioned)
# --------------------------------------------------------------------------------------------------
STORY_SUBJECTS: list[tuple[str, str, str]] = [
    # (description, name used in the reference, check words)
    ("a brave little mouse named Pip", "Pip", "Pip|mouse"),
    ("a robot who learns to paint", "the robot", "robot"),
    ("a dragon who is afraid of the dark", "the dragon", "dragon"),
    ("a girl named Lily who finds a magic key", "Lily", "Lily|key"),
    ("a boy named Sam who wants to fly", "Sam", "Sam"),
    ("a lonely lighthouse keeper", "the keeper", "lighthouse|keeper"),
    ("a cat named Whiskers who gets lost in the city", "Whiskers", "Whiskers|cat"),
    ("a dog named Max who saves his family", "Max", "Max|dog"),
    ("a tiny seed that grows into a giant tree", "the seed", "seed|tree"),
    ("a friendly ghost who lives in an old house", "the ghost", "ghost"),
    ("a princess who becomes a knight", "the princess", "princess|knight"),
    ("an old fisherman and a golden fish", "the fisherman", "fisherman|fish"),
    ("a penguin who wants to see the desert", "the penguin", "penguin|desert"),
    ("a wizard who loses his magic wand", "the wizard", "wizard|wand"),
    ("a turtle who wins a race", "the turtle", "turtle|race"),
    ("an owl named Oliver who cannot sleep at night", "Oliver", "Oliver|owl"),
    ("a little cloud that wants to make rain", "the cloud", "cloud|rain"),
    ("a baker named Rosa who bakes a magic cake", "Rosa", "Rosa|cake|baker"),
    ("a pirate looking for treasure", "the pirate", "pirate|treasure"),
    ("an astronaut who meets an alien", "the astronaut", "astronaut|alien"),
    ("a bear named Bruno who loves honey", "Bruno", "Bruno|bear|honey"),
    ("a young farmer and a talking cow", "the farmer", "farmer|cow"),
    ("a fox who makes friends with a rabbit", "the fox", "fox|rabbit"),
    ("a girl named Mia who talks to the stars", "Mia", "Mia|star"),
    ("a knight named Arthur and a gentle giant", "Arthur", "Arthur|giant|knight"),
    ("an elephant who never forgets a friend", "the elephant", "elephant"),
    ("a small boat on a big ocean", "the boat", "boat|ocean"),
    ("a snowman who wants to see summer", "the snowman", "snowman|summer"),
    ("a grandmother who tells stories", "Grandmother", "grandmother|grandma"),
    ("a lost puppy looking for home", "the puppy", "puppy|dog"),
    ("a butterfly named Bella", "Bella", "Bella|butterfly"),
    ("a teacher who has a secret", "the teacher", "teacher"),
    ("a king who loves to dance", "the king", "king|dance"),
    ("a boy named Leo and his kite", "Leo", "Leo|kite"),
    ("a squirrel preparing for winter", "the squirrel", "squirrel|winter"),
    ("a mermaid who wants to walk on land", "the mermaid", "mermaid"),
    ("a clockmaker named Hugo", "Hugo", "Hugo|clock"),
    ("a frog who wants to be a prince", "the frog", "frog|prince"),
    ("a little train that climbs a mountain", "the train", "train|mountain"),
    ("a girl named Emma who plants a garden", "Emma", "Emma|garden"),
    ("a lion who lost his roar", "the lion", "lion|roar"),
    ("a detective named Nora who solves a mystery", "Nora", "Nora|mystery|detective"),
    ("a monkey who steals a banana", "the monkey", "monkey|banana"),
    ("two best friends on a camping trip", "the friends", "friend|camping|camp"),
    ("a unicorn in an enchanted forest", "the unicorn", "unicorn|forest"),
]
STORY_PROMPTS = (
    "Write a short story about {subject}.",
    "Tell me a short story about {subject}.",
    "Write a short children's story about {subject}.",
)
STORY_PLACES = ("in a small village by the sea", "at the edge of a quiet forest", "in a busy town full of noise",
                "high up in the cold mountains", "near a sparkling river", "on a farm with green fields")
STORY_EVENTS = ("a strong storm came and scattered everything", "a strange map appeared under the door",
                "a stranger asked for help", "the path home disappeared in the fog",
                "an old friend sent a mysterious letter", "the sun did not rise at the usual time")
STORY_ENDINGS = ("learned that courage grows when you share it with friends",
                 "found out that being kind is the strongest magic of all",
                 "understood that home is wherever the people you love are",
                 "discovered that patience can solve the hardest problems",
                 "realised that asking for help is nothing to be ashamed of")


def build_story_writing(rng: random.Random) -> list[dict]:
    rows = []
    for subject, name, check in STORY_SUBJECTS:
        for template in STORY_PROMPTS:
            hero = name[0].upper() + name[1:]
            reference = (
                f"Once upon a time, there was {subject}. {hero} lived {rng.choice(STORY_PLACES)}. "
                f"Every day was calm and simple, until one morning {rng.choice(STORY_EVENTS)}. "
                f"{hero} was worried at first, but took a deep breath and set off to make things right. "
                f"It was not easy, and there were moments of doubt, yet step by step the problem was solved. "
                f"In the end, {name} {rng.choice(STORY_ENDINGS)}."
            )
            rows.append({"prompt": template.format(subject=subject), "reference": reference, "check": check,
                         "family": subject, "key": subject})
    return rows


# --------------------------------------------------------------------------------------------------
# factual_qa: (question, reference sentence, accepted answers separated by |)
# --------------------------------------------------------------------------------------------------
CAPITALS = [
    ("France", "Paris"), ("Italy", "Rome"), ("Germany", "Berlin"), ("Spain", "Madrid"), ("Japan", "Tokyo"),
    ("England", "London"), ("the United Kingdom", "London"), ("Russia", "Moscow"), ("China", "Beijing"),
    ("Egypt", "Cairo"), ("Greece", "Athens"), ("Portugal", "Lisbon"), ("Ireland", "Dublin"),
    ("Austria", "Vienna"), ("Norway", "Oslo"), ("Sweden", "Stockholm"), ("Denmark", "Copenhagen"),
    ("Finland", "Helsinki"), ("Poland", "Warsaw"), ("the Netherlands", "Amsterdam"), ("Belgium", "Brussels"),
    ("Canada", "Ottawa"), ("Mexico", "Mexico City"), ("Argentina", "Buenos Aires"), ("Peru", "Lima"),
    ("South Korea", "Seoul"), ("Thailand", "Bangkok"), ("India", "New Delhi|Delhi"), ("Kenya", "Nairobi"),
    ("Hungary", "Budapest"), ("the Czech Republic", "Prague"), ("Turkey", "Ankara"), ("Cuba", "Havana"),
    ("the United States", "Washington"), ("Australia", "Canberra"), ("Iran", "Tehran"), ("Chile", "Santiago"),
    ("Colombia", "Bogota|Bogotá"), ("Scotland", "Edinburgh"), ("Switzerland", "Bern|Berne"),
]
FACTS: list[tuple[str, str, str]] = [
    ("How many legs does a spider have?", "A spider has eight legs.", "8|eight"),
    ("How many legs does an insect have?", "An insect has six legs.", "6|six"),
    ("How many days are there in a week?", "There are seven days in a week.", "7|seven"),
    ("How many months are there in a year?", "There are twelve months in a year.", "12|twelve"),
    ("How many hours are there in a day?", "There are twenty-four hours in a day.", "24|twenty four"),
    ("How many minutes are there in an hour?", "There are sixty minutes in an hour.", "60|sixty"),
    ("How many continents are there on Earth?", "There are seven continents.", "7|seven"),
    ("How many sides does a triangle have?", "A triangle has three sides.", "3|three"),
    ("How many sides does a square have?", "A square has four sides.", "4|four"),
    ("How many sides does a hexagon have?", "A hexagon has six sides.", "6|six"),
    ("How many wheels does a bicycle have?", "A bicycle has two wheels.", "2|two"),
    ("How many letters are in the English alphabet?", "The English alphabet has twenty-six letters.", "26|twenty six"),
    ("How many planets are in our solar system?", "There are eight planets in our solar system.", "8|eight"),
    ("What is the largest planet in our solar system?", "Jupiter is the largest planet in our solar system.", "Jupiter"),
    ("Which planet is known as the Red Planet?", "Mars is known as the Red Planet.", "Mars"),
    ("Which planet is closest to the Sun?", "Mercury is the planet closest to the Sun.", "Mercury"),
    ("Which planet has the most famous rings?", "Saturn is famous for its rings.", "Saturn"),
    ("What is the natural satellite of the Earth called?", "The Earth's natural satellite is the Moon.", "Moon"),
    ("What star is at the centre of our solar system?", "The Sun is the star at the centre of our solar system.", "Sun"),
    ("What do bees make?", "Bees make honey.", "honey"),
    ("What do caterpillars turn into?", "Caterpillars turn into butterflies or moths.", "butterfly|butterflies|moth"),
    ("What animal is known as the king of the jungle?", "The lion is known as the king of the jungle.", "lion"),
    ("What is the largest animal on Earth?", "The blue whale is the largest animal on Earth.", "blue whale|whale"),
    ("What is the tallest animal in the world?", "The giraffe is the tallest animal in the world.", "giraffe"),
    ("What is the fastest land animal?", "The cheetah is the fastest land animal.", "cheetah"),
    ("What animal is known for having a trunk?", "The elephant has a trunk.", "elephant"),
    ("What do cows drink when they are young?", "Young cows drink milk.", "milk"),
    ("What is a baby dog called?", "A baby dog is called a puppy.", "puppy|pup"),
    ("What is a baby cat called?", "A baby cat is called a kitten.", "kitten"),
    ("What is a baby sheep called?", "A baby sheep is called a lamb.", "lamb"),
    ("What is a baby cow called?", "A baby cow is called a calf.", "calf"),
    ("What is a baby horse called?", "A baby horse is called a foal.", "foal|colt|filly"),
    ("What is a group of wolves called?", "A group of wolves is called a pack.", "pack"),
    ("What do pandas mainly eat?", "Pandas mainly eat bamboo.", "bamboo"),
    ("What is the main food of rabbits?", "Rabbits mainly eat grass and hay.", "grass|hay|vegetables|carrots"),
    ("What is the colour of a ripe banana?", "A ripe banana is yellow.", "yellow"),
    ("What colour is grass?", "Grass is green.", "green"),
    ("What colour is snow?", "Snow is white.", "white"),
    ("What colour do you get when you mix blue and yellow?", "Mixing blue and yellow gives green.", "green"),
    ("What colour do you get when you mix red and white?", "Mixing red and white gives pink.", "pink"),
    ("What colour is a stop sign?", "A stop sign is red.", "red"),
    ("What is frozen water called?", "Frozen water is called ice.", "ice"),
    ("At what temperature in degrees Celsius does water freeze?", "Water freezes at 0 degrees Celsius.", "0|zero"),
    ("At what temperature in degrees Celsius does water boil at sea level?", "Water boils at 100 degrees Celsius.", "100|one hundred"),
    ("What gas do humans need to breathe to stay alive?", "Humans need oxygen to breathe.", "oxygen"),
    ("What gas do plants take in from the air for photosynthesis?", "Plants take in carbon dioxide.", "carbon dioxide|co2"),
    ("What is the chemical formula of water?", "The chemical formula of water is H2O.", "h2o"),
    ("What is the hardest natural substance?", "Diamond is the hardest natural substance.", "diamond"),
    ("What organ pumps blood through the human body?", "The heart pumps blood through the body.", "heart"),
    ("Which organ do humans use to breathe?", "Humans breathe with their lungs.", "lung|lungs"),
    ("What organ do we use to think?", "We think with the brain.", "brain"),
    ("How many bones does an adult human have?", "An adult human has 206 bones.", "206"),
    ("What is the largest ocean on Earth?", "The Pacific Ocean is the largest ocean on Earth.", "Pacific"),
    ("What is the longest river in Africa?", "The Nile is the longest river in Africa.", "Nile"),
    ("What is the tallest mountain in the world?", "Mount Everest is the tallest mountain in the world.", "Everest"),
    ("What is the largest desert in Africa?", "The Sahara is the largest desert in Africa.", "Sahara"),
    ("What is the largest country in the world by area?", "Russia is the largest country by area.", "Russia"),
    ("On which continent is Egypt?", "Egypt is in Africa.", "Africa"),
    ("On which continent is Brazil?", "Brazil is in South America.", "South America"),
    ("On which continent is Japan?", "Japan is in Asia.", "Asia"),
    ("In which country is the Eiffel Tower?", "The Eiffel Tower is in France.", "France|Paris"),
    ("In which country are the pyramids of Giza?", "The pyramids of Giza are in Egypt.", "Egypt"),
    ("In which city is the Statue of Liberty?", "The Statue of Liberty is in New York City.", "New York"),
    ("In which country is the Great Wall?", "The Great Wall is in China.", "China"),
    ("In which city is the Colosseum?", "The Colosseum is in Rome.", "Rome"),
    ("What language is mainly spoken in Brazil?", "The main language of Brazil is Portuguese.", "Portuguese"),
    ("What language is mainly spoken in Mexico?", "The main language of Mexico is Spanish.", "Spanish"),
    ("What language is mainly spoken in Germany?", "The main language of Germany is German.", "German"),
    ("What is the currency of Japan?", "The currency of Japan is the yen.", "yen"),
    ("What is the currency of the United Kingdom?", "The currency of the United Kingdom is the pound sterling.", "pound"),
    ("Who wrote Romeo and Juliet?", "William Shakespeare wrote Romeo and Juliet.", "Shakespeare"),
    ("Who wrote Hamlet?", "William Shakespeare wrote Hamlet.", "Shakespeare"),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci painted the Mona Lisa.", "Leonardo|da Vinci"),
    ("Who developed the theory of relativity?", "Albert Einstein developed the theory of relativity.", "Einstein"),
    ("Who was the first person to walk on the Moon?", "Neil Armstrong was the first person to walk on the Moon.", "Armstrong"),
    ("Who was the first President of the United States?", "George Washington was the first President of the United States.", "Washington"),
    ("Who discovered penicillin?", "Alexander Fleming discovered penicillin.", "Fleming"),
    ("Who wrote the theory of evolution by natural selection?", "Charles Darwin proposed evolution by natural selection.", "Darwin"),
    ("Who invented the telephone?", "Alexander Graham Bell is credited with inventing the telephone.", "Bell"),
    ("Who composed the Fifth Symphony that begins with four famous notes?", "Ludwig van Beethoven composed the Fifth Symphony.", "Beethoven"),
    ("What season comes after winter?", "Spring comes after winter.", "spring"),
    ("What season comes after summer?", "Autumn, also called fall, comes after summer.", "autumn|fall"),
    ("What is the first month of the year?", "January is the first month of the year.", "January"),
    ("What is the last month of the year?", "December is the last month of the year.", "December"),
    ("What day comes after Monday?", "Tuesday comes after Monday.", "Tuesday"),
    ("What day comes after Friday?", "Saturday comes after Friday.", "Saturday"),
    ("What do we call a person who treats sick people?", "A person who treats sick people is a doctor.", "doctor|physician|nurse"),
    ("What do we call a person who flies an airplane?", "A person who flies an airplane is a pilot.", "pilot"),
    ("What do we call a person who teaches students in a school?", "A person who teaches students is a teacher.", "teacher"),
    ("What tool do we use to cut paper?", "We use scissors to cut paper.", "scissors"),
    ("What instrument has black and white keys?", "The piano has black and white keys.", "piano|keyboard"),
    ("What do you call a shape with four equal sides and four right angles?", "That shape is a square.", "square"),
    ("What is the boiling liquid in a kettle usually?", "A kettle usually boils water.", "water"),
    ("What fruit is used to make wine?", "Wine is made from grapes.", "grape|grapes"),
    ("What do plants need from the Sun to grow?", "Plants need sunlight from the Sun to grow.", "light|sunlight|energy"),
    ("What falls from clouds when it rains?", "Water falls from clouds as rain.", "water|rain|drops"),
    ("What is the main ingredient of bread?", "The main ingredient of bread is flour.", "flour|wheat"),
    ("What do you call the place where books are kept for people to borrow?", "It is called a library.", "library"),
    ("What sport is played at Wimbledon?", "Tennis is played at Wimbledon.", "tennis"),
    ("How many players are on a football (soccer) team on the field?", "A football team has eleven players on the field.", "11|eleven"),
]
# "What is the capital city of X?" was tried too: SmolLM2 then often answers "El Salvador" (4 of 4 misses).
QA_CAPITAL_TEMPLATE = "What is the capital of {country}?"


def build_factual_qa(rng: random.Random) -> list[dict]:
    # A question's family is its first four words ("what is a baby", "how many legs does"); capitals are one family.
    rows = [{"prompt": q, "reference": ref, "check": check, "family": " ".join(q.lower().split()[:4]), "key": q}
            for q, ref, check in FACTS]
    for country, capital in CAPITALS:
        first = capital.split("|")[0]
        prompt = QA_CAPITAL_TEMPLATE.format(country=country)
        rows.append({"prompt": prompt, "reference": f"The capital of {country} is {first}.", "check": capital,
                     "family": "capital", "key": prompt})
    return rows


# --------------------------------------------------------------------------------------------------
# antonyms: (word, accepted opposites separated by |; the first is the reference)
# --------------------------------------------------------------------------------------------------
ANTONYMS: list[tuple[str, str]] = [
    ("big", "small|little|tiny"), ("small", "big|large|huge"), ("hot", "cold|cool"), ("cold", "hot|warm|heat"),
    ("fast", "slow"), ("slow", "fast|quick"), ("happy", "sad|unhappy"), ("sad", "happy|glad|joyful"),
    ("early", "late"), ("late", "early"), ("up", "down"), ("down", "up"), ("day", "night|nighttime"),
    ("night", "day"), ("light", "dark|darkness|heavy"), ("dark", "light|bright"), ("open", "closed|close|shut"),
    ("old", "new|young"), ("new", "old"), ("young", "old|elderly"), ("good", "bad|evil"),
    ("bad", "good"), ("tall", "short"), ("long", "short"), ("high", "low"), ("low", "high"),
    ("rich", "poor"), ("poor", "rich|wealthy"), ("strong", "weak"), ("weak", "strong"),
    ("hard", "soft|easy"), ("soft", "hard"), ("easy", "hard|difficult"), ("difficult", "easy|simple"),
    ("wet", "dry"), ("dry", "wet|moist"), ("clean", "dirty"), ("dirty", "clean"), ("full", "empty"),
    ("empty", "full"), ("heavy", "light"), ("loud", "quiet|soft|silent"), ("quiet", "loud|noisy"),
    ("inside", "outside"), ("outside", "inside"), ("above", "below|beneath|under"), ("below", "above|over"),
    ("before", "after"), ("after", "before"), ("first", "last"), ("last", "first"), ("win", "lose"),
    ("lose", "win|find|gain"), ("begin", "end|finish"), ("start", "end|finish|stop"), ("push", "pull"),
    ("pull", "push"), ("buy", "sell"), ("sell", "buy"), ("give", "take|receive"), ("take", "give"),
    ("love", "hate"), ("hate", "love"), ("friend", "enemy|foe"), ("enemy", "friend|ally"),
    ("true", "false"), ("false", "true"), ("yes", "no"), ("left", "right"), ("right", "left|wrong"),
    ("thick", "thin"), ("thin", "thick|fat"), ("wide", "narrow"), ("narrow", "wide|broad"),
    ("deep", "shallow"), ("shallow", "deep"), ("near", "far"), ("far", "near|close"),
    ("cheap", "expensive|costly"), ("expensive", "cheap|inexpensive"), ("sweet", "sour|bitter"),
    ("beautiful", "ugly|hideous"), ("ugly", "beautiful|pretty|handsome|attractive"), ("brave", "cowardly|scared|afraid|fearful"),
    ("kind", "cruel|mean|unkind"), ("polite", "rude|impolite"), ("rude", "polite|kind"),
    ("safe", "dangerous|unsafe"), ("dangerous", "safe"), ("remember", "forget"), ("forget", "remember"),
    ("arrive", "leave|depart"), ("leave", "arrive|stay|enter"), ("enter", "exit|leave"),
    ("increase", "decrease|reduce"), ("decrease", "increase"), ("accept", "reject|refuse|decline"),
    ("always", "never"), ("never", "always"), ("everything", "nothing"), ("nothing", "everything"),
    ("question", "answer"), ("answer", "question"), ("sunrise", "sunset"), ("summer", "winter"),
    ("winter", "summer"), ("north", "south"), ("south", "north"), ("east", "west"), ("west", "east"),
    ("asleep", "awake"), ("awake", "asleep"), ("alive", "dead"), ("dead", "alive|living"),
    ("laugh", "cry"), ("cry", "laugh"), ("top", "bottom"), ("bottom", "top"), ("front", "back|rear"),
    ("back", "front|forward"), ("sharp", "blunt|dull"), ("smooth", "rough"), ("rough", "smooth"),
    ("wild", "tame|domestic"), ("noisy", "quiet|silent"), ("success", "failure"), ("failure", "success"),
    ("maximum", "minimum"), ("minimum", "maximum"), ("victory", "defeat|loss"), ("public", "private"),
    ("private", "public"), ("ancient", "modern|new"), ("modern", "ancient|old"),
]
# "Give one word that means the opposite of 'X'." was tried too: 4/10 right against 13/20 for these.
ANTONYM_PROMPTS = (
    "What is the opposite of '{word}'? Answer with one word.",
    "What is the opposite of the word \"{word}\"?",
    "What is the opposite of \"{word}\"? Reply with a single word.",
)


def build_antonyms(rng: random.Random) -> list[dict]:
    rows = []
    for word, opposites in ANTONYMS:
        reference = opposites.split("|")[0]
        rows.append({"prompt": rng.choice(ANTONYM_PROMPTS).format(word=word),
                     "reference": f"The opposite of \"{word}\" is \"{reference}\".", "check": opposites,
                     "family": " ".join(sorted((word, reference))), "key": word})
    return rows


BUILDERS = {
    "python_coding": build_python_coding,
    "story_writing": build_story_writing,
    "factual_qa": build_factual_qa,
    "antonyms": build_antonyms,
}
MIN_ITEMS = 120

# --------------------------------------------------------------------------------------------------
# test_paraphrase: test tasks asked the way a person would, written by hand (no template), keyed by the
# task they ask (python: function name; story: subject; QA: original question; antonyms: the word).
# Each takes the reference and checker of that task, and its whole family goes to the test half.
# --------------------------------------------------------------------------------------------------
PARAPHRASES: dict[str, list[tuple[str, str]]] = {
    "python_coding": [
        ("factorial", "Can you implement factorial(n) in Python for me? It should give 1 for n = 0."),
        ("fibonacci", "I need fibonacci(n) in Python: fibonacci(0) is 0, fibonacci(1) is 1, and each later one adds the two before it."),
        ("is_prime", "How would I check in Python whether a number is prime? Please give me is_prime(n) returning True or False."),
        ("gcd", "My kid's homework needs the greatest common divisor of two positive numbers. Could you code gcd(a, b) in Python?"),
        ("reverse_string", "Show me some Python that flips a string backwards, as a function reverse_string(s)."),
        ("is_palindrome", "I want a quick Python helper, is_palindrome(s), that tells me if a word is spelled the same both ways."),
        ("count_vowels", "Could you code up count_vowels(s) in Python? It counts a, e, i, o and u in a lowercase string."),
        ("celsius_to_fahrenheit", "Python question: how do I turn Celsius into Fahrenheit? Call the function celsius_to_fahrenheit(c)."),
        ("sum_of_digits", "Please give me a Python function sum_of_digits(n), so that 123 gives 6."),
        ("is_leap_year", "Is 1900 a leap year? Help me write is_leap_year(year) in Python using the Gregorian rules."),
        ("remove_duplicates", "I have a list with repeats. Can you write remove_duplicates(items) in Python that drops them but keeps the original order?"),
        ("find_max", "Need a tiny Python snippet: find_max(numbers) giving back the biggest value in a non-empty list."),
        ("average", "How do I compute the mean of a list in Python? Wrap it as average(numbers); the list is never empty."),
        ("word_count", "Quick one: a Python word_count(sentence) that tells how many space-separated words a sentence has."),
        ("fizzbuzz", "Could you do the classic FizzBuzz in Python as fizzbuzz(n)? Return 'Fizz', 'Buzz', 'FizzBuzz' or the number as a string."),
        ("clamp", "In Python, how would you keep a value between a lower and an upper bound? Please write clamp(x, low, high)."),
        ("longest_word", "Help me find the longest word in a sentence with Python: longest_word(sentence), and the first one wins on ties."),
        ("capitalize_words", "I'd like Python code that makes every word start with a capital letter. Name it capitalize_words(sentence)."),
        ("sum_even", "Could you make a Python function sum_even(numbers) that adds up only the even numbers of a list?"),
        ("greet", "For my little app I need greet(name) in Python, giving back something like 'Hello, Ann!'."),
        ("circle_area", "What's the Python code for the area of a circle? Call it circle_area(r), with r the radius."),
        ("times_3", "Python please: times_3(n) should just triple the number it gets."),
        ("repeat_3", "I need repeat_3(s) in Python, which gives the string three times in a row, like 'ab' becoming 'ababab'."),
        ("count_greater_than_5", "Can you code count_greater_than_5(numbers) in Python? It should tell how many list entries are above 5."),
    ],
    "story_writing": [
        ("a dragon who is afraid of the dark", "My son is scared of the dark. Could you tell him a bedtime tale where a dragon is scared of it too?"),
        ("a dragon who is afraid of the dark", "Make up a little tale for me about a dragon that can't stand the dark."),
        ("a robot who learns to paint", "I'd love to read a short tale about a robot picking up a paintbrush for the first time."),
        ("a penguin who wants to see the desert", "Tell my class a quick tale: a penguin dreams of visiting a hot sandy desert."),
        ("a penguin who wants to see the desert", "Can you spin a few paragraphs about a penguin who travels to see the desert?"),
        ("a wizard who loses his magic wand", "Imagine a wizard who can't find his wand. What happens next? Tell it as a little tale."),
        ("a pirate looking for treasure", "Spin me a yarn about a pirate hunting for buried treasure."),
        ("a pirate looking for treasure", "My nephew loves pirates. Could you make up a tale about one searching for treasure?"),
        ("a bear named Bruno who loves honey", "Could you make up a bedtime tale about Bruno, a bear who can't get enough honey?"),
        ("a snowman who wants to see summer", "What would happen if a snowman tried to see summer? Tell it to me as a short tale."),
        ("a little train that climbs a mountain", "Tell me a tale about a little train puffing its way up a mountain."),
        ("a little train that climbs a mountain", "My toddler loves trains. Can you make up something short about a small train going up a steep mountain?"),
        ("a frog who wants to be a prince", "Give me a fairy-tale-style piece about a frog who dreams of becoming a prince."),
        ("a girl named Emma who plants a garden", "Could you tell a gentle tale about Emma planting her very first garden?"),
        ("a girl named Emma who plants a garden", "I'm looking for a short read-aloud about a girl called Emma and the garden she grows."),
        ("a detective named Nora who solves a mystery", "Make up a little mystery where a detective called Nora cracks the case."),
        ("a fox who makes friends with a rabbit", "Tell me a tale of a fox and a rabbit who become friends."),
        ("a fox who makes friends with a rabbit", "Could you make up a heartwarming little tale where a fox befriends a rabbit?"),
        ("a clockmaker named Hugo", "I'd like a short tale about Hugo, an old clockmaker in his workshop."),
        ("a unicorn in an enchanted forest", "Describe an adventure of a unicorn in an enchanted forest, as a little tale."),
        ("a unicorn in an enchanted forest", "Could you invent a bedtime tale with a unicorn living in a magical forest?"),
        ("a lonely lighthouse keeper", "Tell me something short and touching about a lighthouse keeper who lives all alone."),
        ("a squirrel preparing for winter", "Make up a tale about a squirrel getting ready for winter."),
        ("a squirrel preparing for winter", "Can you narrate a little adventure of a squirrel storing nuts before the cold of winter?"),
    ],
    "factual_qa": [
        ("How many legs does a spider have?", "If I count the legs on a spider, what number do I get?"),
        ("What is the largest planet in our solar system?", "Which planet in our solar system is the biggest one?"),
        ("What do bees make?", "What sweet food do bees produce?"),
        ("What is a baby cat called?", "My cat just had babies. What are baby cats called?"),
        ("What is the hardest natural substance?", "Which natural material is the hardest of all?"),
        ("What organ pumps blood through the human body?", "Which organ keeps blood moving around our body?"),
        ("What is the longest river in Africa?", "Name the longest river in Africa for me."),
        ("Who painted the Mona Lisa?", "Which artist painted the Mona Lisa?"),
        ("What is the currency of Japan?", "If I travel to Japan, what money will I pay with?"),
        ("What language is mainly spoken in Brazil?", "Which language do most people in Brazil speak?"),
        ("What season comes after winter?", "Once winter is over, which season begins?"),
        ("What do we call a person who flies an airplane?", "What's the job title of someone who flies planes?"),
        ("What sport is played at Wimbledon?", "Which sport are the Wimbledon championships about?"),
        ("At what temperature in degrees Celsius does water freeze?", "At how many degrees Celsius does water turn into ice?"),
        ("How many bones does an adult human have?", "Roughly how many bones make up a grown-up human skeleton?"),
        ("Which planet is known as the Red Planet?", "People call one planet the Red Planet. Which one is it?"),
        ("What animal is known as the king of the jungle?", "Which animal gets called the king of the jungle?"),
        ("What is the tallest mountain in the world?", "What's the tallest mountain on the planet?"),
        ("Who developed the theory of relativity?", "Who came up with the theory of relativity?"),
        ("What tool do we use to cut paper?", "Which tool would you grab to cut a sheet of paper?"),
        ("What fruit is used to make wine?", "Wine is made from which fruit?"),
        ("What do you call the place where books are kept for people to borrow?", "Where would you go to borrow books for free?"),
        ("Who wrote Romeo and Juliet?", "Who is the playwright behind Romeo and Juliet?"),
        ("What instrument has black and white keys?", "I want to learn the instrument with black and white keys. What is it called?"),
    ],
    "antonyms": [
        ("hot", "If something is the exact reverse of hot, how would you describe it in one word?"),
        ("fast", "Give me the word that means the reverse of 'fast'."),
        ("happy", "My little brother asked what the contrary of 'happy' is. What should I tell him?"),
        ("early", "Fill in the blank with one word: not early but ___."),
        ("up", "What word would you use for the other end from 'up'?"),
        ("rich", "I'm doing a crossword and the clue is 'not rich' (4 letters). What's the word?"),
        ("strong", "In one word, what's the flip side of 'strong'?"),
        ("full", "If a glass isn't full, what is it?"),
        ("wide", "What would you call a road that isn't wide?"),
        ("remember", "Tell me a word meaning the reverse of 'remember'."),
        ("buy", "Which word is the counterpart of 'buy' when you trade things?"),
        ("always", "What's the contrary of 'always'?"),
        ("north", "Name the compass direction facing away from north."),
        ("sunrise", "What do you call the end of the day when the sun goes down, the counterpart of sunrise?"),
        ("asleep", "If you're not asleep, what are you?"),
        ("ancient", "My teacher says 'ancient' has a counterpart. Which word is it?"),
        ("victory", "Antonym of 'victory', please."),
        ("smooth", "If something isn't smooth, how does it feel? One word."),
        ("public", "What's a single word for the reverse of 'public'?"),
        ("cheap", "Not cheap, but...? Give me the word."),
        ("laugh", "Which word pairs with 'laugh' as its contrary?"),
        ("polite", "What is the antonym of 'polite'?"),
        ("deep", "Water that is not deep is called what?"),
        ("increase", "Give the reverse of 'increase' in a single word."),
    ],
}
MIN_PARAPHRASES = 24

# --------------------------------------------------------------------------------------------------
# probe_paraphrase: probe-half tasks asked in varied everyday wordings, written by hand (no template), keyed
# like PARAPHRASES. They stay on the probe side (their families must land in the probe half) and share no
# family with test_paraphrase; methods may fit on them (Key Space Detection's key space does).
# --------------------------------------------------------------------------------------------------
PROBE_PARAPHRASES: dict[str, list[tuple[str, str]]] = {
    "python_coding": [
        ("add", "Hey, could you write me add(a, b) in Python? It just needs to give back a + b."),
        ("subtract", "I'm new to Python. How do I make subtract(a, b) that takes b away from a?"),
        ("square", "What would square(n) look like in Python if it multiplies n by itself?"),
        ("cube", "Got a small Python exercise for you: cube(n), the number to the third power."),
        ("absolute_value", "How can I get rid of the minus sign of a number in Python? Write absolute_value(n) for me."),
        ("is_positive", "I'm stuck on a Python exercise: is_positive(n) has to say True only for numbers above zero."),
        ("is_negative", "Code me is_negative(n) in Python please, True when the number is below zero."),
        ("max_of_two", "Which of two numbers is bigger? Give me a Python function max_of_two(a, b) that answers that."),
        ("find_min", "Implement find_min(numbers) in Python, returning the lowest value of a list that is never empty."),
        ("list_length", "Could you show me a Python def called list_length(items) that counts the items in a list?"),
        ("contains", "How do I test if a list has a certain value in Python? I'd like contains(items, x) giving True or False."),
        ("even_numbers", "Write me some Python: even_numbers(numbers) should keep only the even values of the list."),
        ("squares", "Can I get a Python function squares(numbers) that squares every entry of a list?"),
        ("sort_list", "Python help wanted: sort_list(numbers) must hand back a sorted copy, smallest first."),
        ("merge_lists", "What's a neat way in Python to glue two lists together? Please write merge_lists(a, b)."),
        ("last_element", "I keep forgetting how to grab the final item of a list in Python. Make it a function last_element(items)."),
        ("last_char", "How would you code last_char(s) in Python, the final letter of a non-empty string?"),
        ("to_lower", "Could you give me to_lower(s) in Python so that shouting text becomes lowercase?"),
        ("is_vowel", "For a spelling game I need is_vowel(ch) in Python: True for a, e, i, o or u."),
        ("minutes_to_seconds", "My timer app needs minutes_to_seconds(minutes) in Python. What would it be?"),
        ("square_perimeter", "How long is the fence around a square field? Write square_perimeter(side) in Python."),
        ("add_4", "Python snippet needed: add_4(n) bumps a number up by four."),
        ("add_10", "Would you write add_10(n) in Python for me, adding ten to whatever comes in?"),
        ("count_e", "In Python, how do I count the letter e in a word? Call it count_e(s)."),
        ("count_t", "Please code count_t(s) in Python, telling me how often 't' shows up in a string."),
        ("last_3_chars", "What's the Python for grabbing the final three characters of a string? Call it last_3_chars(s)."),
        ("keep_above_10", "I'd like a Python filter keep_above_10(numbers) that throws away everything that is 10 or less."),
        ("keep_above_0", "Can you help me code keep_above_0(numbers) in Python so only the positive numbers remain?"),
        ("starts_with_b", "In Python, how would I check that a word begins with b? Write starts_with_b(word) returning True or False."),
        ("starts_with_s", "Please put together starts_with_s(word) in Python; it should be True for words starting with 's'."),
        ("add_7", "I'm teaching my class Python. Show them add_7(n), which adds seven to n."),
        ("count_a", "Count the a's in a string for me with a Python function named count_a(s)."),
        ("keep_above_5", "Using Python, how do I drop every number that isn't bigger than 5? Write keep_above_5(numbers)."),
        ("last_2_chars", "Give me Python that returns just the last two letters of a string, as last_2_chars(s)."),
        ("starts_with_t", "Would you make starts_with_t(word) in Python? I need to know if a word starts with a t."),
        ("sort_list", "Could you write sort_list(numbers) in Python? I want the numbers in increasing order in a new list."),
    ],
    "story_writing": [
        ("a brave little mouse named Pip", "Could you make up a bedtime tale about Pip, a tiny mouse with a big heart?"),
        ("a butterfly named Bella", "I'd like a gentle tale for my daughter about Bella the butterfly."),
        ("a lion who lost his roar", "What if a lion woke up and could not roar anymore? Tell me that tale."),
        ("a lost puppy looking for home", "Please spin a little tale about a puppy trying to find its way home."),
        ("a turtle who wins a race", "Can you tell the tale of a slow turtle who somehow wins a race?"),
        ("a teacher who has a secret", "Make up a short mystery-ish tale about a teacher hiding a secret."),
        ("a mermaid who wants to walk on land", "Tell me a tale of a mermaid who dreams of walking on land."),
        ("an astronaut who meets an alien", "I want a quick bedtime read about an astronaut bumping into an alien."),
        ("a small boat on a big ocean", "Could you narrate a short adventure of a little boat lost on a huge ocean?"),
        ("a monkey who steals a banana", "Invent a funny tale about a cheeky monkey that swipes a banana."),
        ("a girl named Mia who talks to the stars", "My niece Mia loves the night sky. Tell a tale where a girl named Mia chats with the stars."),
        ("two best friends on a camping trip", "Spin me a campfire tale about two best friends camping in the woods."),
        ("a friendly ghost who lives in an old house", "Could you write a cozy tale about a kind ghost in an old house?"),
        ("a grandmother who tells stories", "Tell me a warm little tale about a grandma who tells the best stories."),
        ("a tiny seed that grows into a giant tree", "I'd love a short tale about a tiny seed that becomes an enormous tree."),
        ("a boy named Leo and his kite", "Make up something short for kids about a boy named Leo flying his kite."),
    ],
    "factual_qa": [
        ("What is the capital of Japan?", "Which city is Japan's capital?"),
        ("What is the capital of Italy?", "If I fly to the capital of Italy, where do I land?"),
        ("What is the capital of Canada?", "Quick question: Canada's capital city is what?"),
        ("What is the capital of Egypt?", "Tell me the capital of Egypt, please."),
        ("What is the capital of Australia?", "Lots of people get this wrong: what's Australia's capital?"),
        ("What is the capital of Spain?", "Spain's capital is which city?"),
        ("How many days are there in a week?", "How many days make up one week?"),
        ("What do caterpillars turn into?", "A caterpillar grows up into what insect?"),
        ("What is the natural satellite of the Earth called?", "What's the name of the thing that orbits Earth and lights up the night?"),
        ("Which planet is closest to the Sun?", "Which planet sits nearest to the Sun?"),
        ("What is the capital of India?", "I'm flying into India's capital. What city is that?"),
        ("Who invented the telephone?", "Who gets the credit for inventing the telephone?"),
        ("What colour is grass?", "Kids draw grass with which colour crayon?"),
        ("What is the main ingredient of bread?", "Bread is mostly made from what?"),
        ("Who was the first person to walk on the Moon?", "Who took the very first steps on the Moon?"),
        ("In which country are the pyramids of Giza?", "I want to visit the pyramids of Giza. Which country do I travel to?"),
    ],
    "antonyms": [
        ("big", "Tell me the word for the reverse of big."),
        ("true", "If a statement isn't true, what is it? One word."),
        ("hard", "I need the antonym of 'hard' for my homework."),
        ("quiet", "What do you call a room that is the opposite of quiet?"),
        ("alive", "Give me the one-word counterpart of 'alive'."),
        ("first", "Not first in line but ___? One word please."),
        ("clean", "My room is the opposite of clean. What is it?"),
        ("bad", "Which word means the reverse of 'bad'?"),
        ("high", "What's the contrary of 'high'?"),
        ("enemy", "Someone who is not your enemy is your what?"),
        ("thick", "Name the word that is the reverse of 'thick'."),
        ("heavy", "If a bag isn't heavy, how would you describe it in one word?"),
        ("far", "What's the one-word antonym of 'far'?"),
        ("win", "In a game, if you don't win you ___? Just the word."),
        ("soft", "A pillow is soft; a rock is the opposite. What word?"),
        ("easy", "Give the antonym of 'easy', single word."),
        ("young", "What word describes someone who is the opposite of young?"),
        ("false", "Reverse of 'false' in one word?"),
        ("light", "If something is not light in weight, what is it? Answer in one word."),
        ("inside", "What's the counterpart of 'inside'?"),
        ("east", "Which compass direction is across from east?"),
        ("arrive", "Trains arrive and then they ___. Which single word fits as the antonym?"),
        ("maximum", "What word is the contrary of 'maximum'?"),
        ("success", "Give me one word meaning the reverse of 'success'."),
    ],
}
MIN_PROBE_PARAPHRASES = 16
# The tune split: whole probe-side families set aside for choosing defaults (never trained on, never tested).
TUNE_ITEMS = 16  # aimed for; factual_qa's free families hold fewer
MIN_TUNE_ITEMS = 12


def families(rows: list[dict], link_answers: bool) -> list[str]:
    """Each row's family after merging families that share a member: rows of one family, and (for
    QA and antonyms) rows with the same first accepted answer, end in one family."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for row in rows:
        keys = [f"family:{row['family']}"]
        if link_answers:
            keys.append(f"answer:{row['check'].split('|')[0].lower()}")
        for key in keys[1:]:
            a, b = sorted((find(keys[0]), find(key)), key=lambda k: (k.startswith("answer:"), k))
            if a != b:
                parent[b] = a  # a family name, not an answer, names the merged family
    return [find(f"family:{row['family']}").removeprefix("family:") for row in rows]


def paraphrase_rows(skill: str, rows: list[dict], table: dict[str, list[tuple[str, str]]]) -> list[dict]:
    """The hand-written paraphrases in ``table`` of ``skill`` with the reference, checker and family of the
    task they ask."""
    by_key: dict[str, dict] = {}
    for row in rows:
        by_key.setdefault(row["key"], row)
    out = []
    for key, prompt in table[skill]:
        task = by_key[key]
        out.append({"prompt": prompt, "reference": task["reference"], "check": task["check"],
                    "family": task["family"]})
    return out


def make_skill_set(skill: str) -> dict:
    """Rows of one skill, shuffled with a seed made from SEED and the skill's name, cut in two halves by family,
    plus the hand-written ``test_paraphrase`` split.

    A family (one Python task or parametrised family such as add_k, a story subject in its three wordings,
    a word and its opposite, a question template such as "what is a baby ...", all capitals; for QA and
    antonyms also every row with the same answer) lands in one half, so the test half is neither a
    rewording nor a parameter variant of the probe half. Families with a paraphrase go to the test half.
    """
    rng = random.Random(f"{SEED}-{skill}")
    rows = BUILDERS[skill](rng)
    prompts = [row["prompt"] for row in rows]
    if len(set(prompts)) != len(prompts):
        duplicated = sorted({p for p in prompts if prompts.count(p) > 1})
        raise ValueError(f"{skill}: duplicated prompts {duplicated[:3]}")
    if len(rows) < MIN_ITEMS:
        raise ValueError(f"{skill}: only {len(rows)} items, need {MIN_ITEMS}")
    for row, family in zip(rows, families(rows, link_answers=skill in ("factual_qa", "antonyms"))):
        row["family"] = family
    paraphrases = paraphrase_rows(skill, rows, PARAPHRASES)
    if len(paraphrases) < MIN_PARAPHRASES:
        raise ValueError(f"{skill}: only {len(paraphrases)} paraphrases, need {MIN_PARAPHRASES}")
    probe_paraphrases = paraphrase_rows(skill, rows, PROBE_PARAPHRASES)
    if len(probe_paraphrases) < MIN_PROBE_PARAPHRASES:
        raise ValueError(f"{skill}: only {len(probe_paraphrases)} probe paraphrases, need {MIN_PROBE_PARAPHRASES}")
    groups: dict[str, list[dict]] = {}
    for row in rows:
        del row["key"]
        groups.setdefault(row["family"], []).append(row)
    forced = {row["family"] for row in paraphrases}
    order = list(groups)
    rng.shuffle(order)
    test = [row for family in order if family in forced for row in groups[family]]
    probe: list[dict] = []
    for family in sorted(order, key=lambda f: -len(groups[f])):  # large families first, then the seeded order
        if family not in forced:
            # a family joins the probe half while that keeps it closest to half of the rows
            (probe if len(probe) + len(groups[family]) / 2 <= len(rows) / 2 else test).extend(groups[family])
    if len(probe) < len(rows) // 2 - 8:
        raise ValueError(f"{skill}: the paraphrased families leave only {len(probe)} probe rows")
    probe_side = {row["family"] for row in probe}
    stray = sorted({row["family"] for row in probe_paraphrases} - probe_side)
    if stray:
        raise ValueError(f"{skill}: probe paraphrases ask test-half families {stray[:3]}")
    # The tune split: probe-side families without a probe paraphrase, in the seeded order, until it has enough rows.
    kept = {row["family"] for row in probe_paraphrases}
    tune_families: set[str] = set()
    for family in order:
        if sum(len(groups[f]) for f in tune_families) >= TUNE_ITEMS:
            break
        if family in probe_side and family not in kept:
            tune_families.add(family)
    rng.shuffle(probe)
    rng.shuffle(test)
    tune = [row for row in probe if row["family"] in tune_families]
    probe = [row for row in probe if row["family"] not in tune_families]
    if len(tune) < MIN_TUNE_ITEMS:
        raise ValueError(f"{skill}: only {len(tune)} tune rows, need {MIN_TUNE_ITEMS}")
    return {"skill": skill, "seed": SEED, "source": "scripts/make_skill_sets.py", "probe": probe,
            "probe_paraphrase": probe_paraphrases, "tune": tune, "test": test, "test_paraphrase": paraphrases}


def check_references(data: dict) -> None:
    """Raise ValueError if some reference answer does not get full marks from the skill's scorer."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from backends.llm.scoring import behaviour_score
    from backends.llm.skills import SkillItem

    for row in (row for split in SPLITS for row in data[split]):
        item = SkillItem(data["skill"], row["prompt"], row["reference"], row["check"])
        if behaviour_score(item, item.reference) != 1.0:
            raise ValueError(f"{data['skill']}: the reference of {item.prompt!r} fails its own check")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for skill in BUILDERS:
        data = make_skill_set(skill)
        check_references(data)
        path = args.out / f"{skill}.json"
        path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"{skill}: " + " + ".join(f"{len(data[split])} {split}" for split in SPLITS) + f" -> {path}")


if __name__ == "__main__":
    main()
