"""spark-submit entry point: `faerslake screen`.

    spark-submit --py-files dist/faerslake.zip --packages io.delta:delta-spark_4.2_2.13:4.4.0 \
        jobs/screen.py --warehouse wh --output out --roles PS,SS
"""

import sys

from faerslake.cli import main

if __name__ == "__main__":
    sys.exit(main(command="screen"))
