"""Select the retention set: general-knowledge questions the instruct model answers correctly before any training.

The bundled `retention.jsonl` of the natural world is the subset of CANDIDATES that the full SmolLM2-135M-Instruct,
in float32, answers correctly with greedy decoding through its chat template (the answer contains an accepted
lowercase substring). It measures whether training keeps what the model knew, so it depends on the model: select
again for another base model.

    python -m shipit.demo.retention_select ~/.cache/shipit/models/smollm2-135m-instruct \\
        --out src/shipit/demo/data-real/retention.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from shipit.bench.tasks.retention import answered

# (question, accepted lowercase substrings): common knowledge a small instruct model may hold. Numbers are accepted
# as a word and as digits; a string counts where a word starts (see shipit.bench.tasks.retention.answered).
CANDIDATES: list[tuple[str, list[str]]] = [
    ("What is the capital of France?", ["paris"]),
    ("What is the capital of Japan?", ["tokyo"]),
    ("What is the capital of Italy?", ["rome"]),
    ("What is the capital of Germany?", ["berlin"]),
    ("What is the capital of Spain?", ["madrid"]),
    ("What is the capital of the United Kingdom?", ["london"]),
    ("What is the capital of Russia?", ["moscow"]),
    ("What is the capital of China?", ["beijing"]),
    ("What is the capital of Egypt?", ["cairo"]),
    ("What is the capital of Canada?", ["ottawa"]),
    ("What is the capital of Australia?", ["canberra"]),
    ("What is the capital of Greece?", ["athens"]),
    ("What is the capital of Portugal?", ["lisbon"]),
    ("What is the capital of Ireland?", ["dublin"]),
    ("What is the capital of India?", ["new delhi", "delhi"]),
    ("What is the capital city of the United States?", ["washington"]),
    ("What is the largest planet in our solar system?", ["jupiter"]),
    ("Which planet is known as the Red Planet?", ["mars"]),
    ("Which planet is closest to the Sun?", ["mercury"]),
    ("What planet do we live on?", ["earth"]),
    ("What star is at the center of our solar system?", ["sun"]),
    ("What is the natural satellite of the Earth called?", ["moon"]),
    ("How many days are there in a week?", ["seven", "7"]),
    ("How many months are there in a year?", ["twelve", "12"]),
    ("How many hours are there in a day?", ["twenty-four", "twenty four", "24"]),
    ("How many minutes are there in an hour?", ["sixty", "60"]),
    ("How many seconds are there in a minute?", ["sixty", "60"]),
    ("How many days are there in a leap year?", ["366"]),
    ("How many continents are there on Earth?", ["seven", "7"]),
    ("How many legs does a spider have?", ["eight", "8"]),
    ("How many legs does an insect have?", ["six", "6"]),
    ("How many sides does a triangle have?", ["three", "3"]),
    ("How many sides does a hexagon have?", ["six", "6"]),
    ("How many sides does a square have?", ["four", "4"]),
    ("What is 2 plus 2?", ["four", "4"]),
    ("What is 10 times 10?", ["hundred", "100"]),
    ("What is the chemical symbol for water?", ["h2o", "h₂o"]),
    ("What is the capital of Poland?", ["warsaw"]),
    ("What gas do plants absorb from the air for photosynthesis?", ["carbon dioxide", "co2", "co₂"]),
    ("What gas do humans need to breathe to live?", ["oxygen"]),
    ("At what temperature in Celsius does water freeze?", ["0 degrees", "zero degrees", "0°", "0 °"]),
    ("At what temperature in Celsius does water boil?", ["100"]),
    ("What is the boiling point of water in Fahrenheit?", ["212"]),
    ("What is the largest ocean on Earth?", ["pacific"]),
    ("What is the longest river in Africa?", ["nile"]),
    ("What is the tallest mountain in the world?", ["everest"]),
    ("What is the largest desert in Africa?", ["sahara"]),
    ("On which continent is Brazil?", ["south america"]),
    ("On which continent is Kenya?", ["africa"]),
    ("Which country has the largest population in South America?", ["brazil"]),
    ("What is the largest country in the world by area?", ["russia"]),
    ("Who wrote the play Romeo and Juliet?", ["shakespeare"]),
    ("Who wrote Hamlet?", ["shakespeare"]),
    ("Who painted the Mona Lisa?", ["leonardo", "da vinci"]),
    ("Who developed the theory of relativity?", ["einstein"]),
    ("Who was the first President of the United States?", ["washington"]),
    ("Who was the first person to walk on the Moon?", ["armstrong"]),
    ("Who discovered penicillin?", ["fleming"]),
    ("Who proposed the theory of evolution by natural selection?", ["darwin"]),
    ("Who invented the telephone?", ["bell"]),
    ("Who formulated the laws of motion and universal gravitation?", ["newton"]),
    ("What is the largest mammal on Earth?", ["blue whale"]),
    ("What is the fastest land animal?", ["cheetah"]),
    ("What animal is known as the king of the jungle?", ["lion"]),
    ("What do bees make?", ["honey"]),
    ("What is a baby cat called?", ["kitten"]),
    ("What is a baby dog called?", ["puppy", "puppies"]),
    ("What animal has a long trunk?", ["elephant"]),
    ("Which bird is a symbol of peace?", ["dove"]),
    ("What is the hardest natural substance?", ["diamond"]),
    ("What color do you get when you mix blue and yellow?", ["green"]),
    ("What color do you get when you mix red and white?", ["pink"]),
    ("What color is the sky on a clear day?", ["blue"]),
    ("What color are ripe bananas?", ["yellow"]),
    ("What color is grass?", ["green"]),
    ("What is frozen water called?", ["ice"]),
    ("What organ pumps blood through the human body?", ["heart"]),
    ("Which organ do humans use to breathe?", ["lung"]),
    ("What organ controls the human body and lets us think?", ["brain"]),
    ("How many bones are in the adult human body?", ["206"]),
    ("What is the largest organ of the human body?", ["skin"]),
    ("What is the main language spoken in Brazil?", ["portuguese"]),
    ("What is the main language spoken in Mexico?", ["spanish"]),
    ("What language is mainly spoken in France?", ["french"]),
    ("What currency is used in Japan?", ["yen"]),
    ("What currency is used in the United States?", ["dollar"]),
    ("In which country are the pyramids of Giza?", ["egypt"]),
    ("In which city is the Eiffel Tower?", ["paris"]),
    ("In which country is the Great Wall?", ["china"]),
    ("In which city is the Colosseum?", ["rome"]),
    ("In which country is the Taj Mahal?", ["india"]),
    ("What is the opposite of hot?", ["cold"]),
    ("What is the opposite of up?", ["down"]),
    ("What is the plural of mouse?", ["mice"]),
    ("What is the capital of Kenya?", ["nairobi"]),
    ("How many letters are in the English alphabet?", ["twenty-six", "twenty six", "26"]),
    ("What season comes after winter?", ["spring"]),
    ("What season comes after summer?", ["autumn", "fall.", "fall,", "fall is", "the fall", "fall season"]),
    ("In which season do leaves usually fall from trees?", ["autumn", " the fall", "in fall", "fall."]),
    ("What is the freezing point of water in Fahrenheit?", ["32"]),
    ("What is the square root of 64?", ["eight", "8"]),
    ("What is the square root of 81?", ["nine", "9"]),
    ("What instrument has black and white keys?", ["piano"]),
    ("What do you call a person who treats sick people?", ["doctor", "physician"]),
    ("What is the main ingredient in guacamole?", ["avocado"]),
    ("What fruit is used to make wine?", ["grape"]),
    ("What is the name of the galaxy we live in?", ["milky way"]),
    ("Which metal is liquid at room temperature?", ["mercury"]),
    ("What is the largest continent by area?", ["asia"]),
    ("Which ocean lies between Europe and North America?", ["atlantic"]),
    ("What is the capital of Sweden?", ["stockholm"]),
    ("What is the capital of Norway?", ["oslo"]),
    ("What is the capital of Turkey?", ["ankara"]),
    ("What is the capital of Argentina?", ["buenos aires"]),
]


def select(model_path: Path, max_new_tokens: int = 32) -> tuple[list[dict], list[dict]]:
    """(kept rows, all rows with the model's answer): greedy float32 chat answers to every candidate."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from shipit.models.generate import chat_generate

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    answers = chat_generate(model, tokenizer, [q for q, _ in CANDIDATES], max_new_tokens=max_new_tokens)
    rows = [{"question": q, "answers": acc, "model_answer": a, "correct": answered(a, acc)}
            for (q, acc), a in zip(CANDIDATES, answers)]
    kept = [{"question": r["question"], "answers": r["answers"]} for r in rows if r["correct"]]
    return kept, rows


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: write the rows the model answers correctly to --out."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="the instruct model's directory")
    parser.add_argument("--out", type=Path, required=True, help="retention.jsonl to write")
    parser.add_argument("--log", type=Path, help="also write every candidate with the model's answer here")
    args = parser.parse_args(argv)
    kept, rows = select(args.model)
    args.out.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in kept), encoding="utf-8")
    if args.log:
        args.log.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), encoding="utf-8")
    print(f"kept {len(kept)} of {len(rows)} candidates -> {args.out}")


if __name__ == "__main__":
    main()
