"""Enlarges a training-image PNG by an integer factor, nearest neighbour (for README pictures).

  python experiments/figures/enlarge.py <input.png> <output.png> [factor, default 4]
"""

import sys

from PIL import Image


def main(argv) -> None:
  if len(argv) not in (3, 4):
    raise SystemExit(__doc__)
  factor = int(argv[3]) if len(argv) == 4 else 4
  image = Image.open(argv[1])
  image.resize((image.width * factor, image.height * factor), Image.NEAREST).save(argv[2])


if __name__ == "__main__":
  main(sys.argv)
