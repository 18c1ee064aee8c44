"""The seed's Spark job (Bayesian top-N over MovieLens ratings) plus the user and
movie features movierec computes: the benchmark's anchor and its parity check.

    python3 bench/spark/bayes_top.py --ratings ratings.csv --out DIR \
        [--min-ratings 50] [--top-n 1000] [--master local[2]] [--driver-memory 4g]

Writes DIR/top-movies.csv        rank,movie_id,score,avg_rating,rating_count
       DIR/movie-features.csv    movie_id,avg_rating,rating_count,std_dev,last_update
       DIR/user-features.csv     user_id,avg_rating,rating_count,std_dev,last_update
(one file each, sorted by rank / id; last_update in ISO-8601 UTC, e.g. 2000-07-30T18:45:03Z).

Semantics (the same as `movierec batch csv`): the latest rating per (user, movie)
wins (newest timestamp; on equal timestamps the later line of the file); per movie
R = mean rating, v = count; C = mean of R over all rated movies; m = min_ratings;
score = v/(v+m)*R + m/(v+m)*C; keep v >= m; order by score desc, movie id asc;
keep top_n. std_dev is the sample standard deviation (0 for a single rating).
"""
import argparse
import csv
import glob
import os
import shutil
import sys
import time

from pyspark import SparkContext
from pyspark.sql import SparkSession, Window, functions as F
from pyspark.sql.types import DoubleType, LongType, StructField, StructType

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--ratings", required=True, help="MovieLens-format ratings.csv (with header)")
p.add_argument("--out", required=True, help="output folder")
p.add_argument("--min-ratings", type=int, default=50)
p.add_argument("--top-n", type=int, default=1000)
p.add_argument("--master", default="local[2]")
p.add_argument("--driver-memory", default="4g")
p.add_argument(
    "--shuffle-partitions", type=int, default=8,
    help="spark.sql.shuffle.partitions (Spark's default 200 is tuned for clusters; "
    "8 suits local[2] from 100k to 25M ratings)",
)
args = p.parse_args()
if not os.path.isfile(args.ratings):
    sys.exit(f"no such file: {args.ratings}")

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
started = time.time()
spark = (
    SparkSession.builder.appName("movierec-bench-bayes-top")
    .master(args.master)
    .config("spark.ui.enabled", "false")
    .config("spark.ui.showConsoleProgress", "false")
    .config("spark.driver.host", "127.0.0.1")
    .config("spark.driver.bindAddress", "127.0.0.1")
    .config("spark.driver.memory", args.driver_memory)
    .config("spark.sql.adaptive.enabled", "true")  # as the seed's job
    .config("spark.sql.shuffle.partitions", str(args.shuffle_partitions))
    .config("spark.sql.session.timeZone", "UTC")
    .getOrCreate()
)
spark.sparkContext.setLogLevel("ERROR")
session_s = time.time() - started

schema = StructType([
    StructField("userId", LongType(), False),
    StructField("movieId", LongType(), False),
    StructField("rating", DoubleType(), False),
    StructField("timestamp", LongType(), False),
])
ratings = (
    spark.read.option("header", True).option("mode", "FAILFAST").schema(schema).csv(args.ratings)
    # Position in the file, for "on equal timestamps the later line wins":
    # the byte offset of the split, then the row's order within the split.
    .withColumn("_split", F.col("_metadata.file_block_start"))
    .withColumn("_row", F.monotonically_increasing_id())
)

# Latest rating per (user, movie).
w = Window.partitionBy("userId", "movieId").orderBy(
    F.col("timestamp").desc(), F.col("_split").desc(), F.col("_row").desc()
)
latest = (
    ratings.withColumn("_rn", F.row_number().over(w))
    .filter(F.col("_rn") == 1)
    .select("userId", "movieId", "rating", "timestamp")
    .cache()
)


def features(key):
    return latest.groupBy(key).agg(
        F.avg("rating").alias("avg_rating"),
        F.count("rating").alias("rating_count"),
        F.coalesce(F.stddev_samp("rating"), F.lit(0.0)).alias("std_dev"),
        F.max("timestamp").alias("last_ts"),
    )


movie_stats = features("movieId").cache()
user_stats = features("userId")

# C: the mean of the per-movie means over all rated movies.
mean_rating = movie_stats.agg(F.avg("avg_rating")).collect()[0][0]
m = float(args.min_ratings)
v = F.col("rating_count").cast("double")
weighted = (v / (v + m)) * F.col("avg_rating") + (m / (v + m)) * F.lit(mean_rating)
top = (
    movie_stats.filter(F.col("rating_count") >= args.min_ratings)
    .withColumn("score", weighted)
    .orderBy(F.desc("score"), F.asc("movieId"))
    .limit(args.top_n)
    .collect()
)

os.makedirs(args.out, exist_ok=True)
with open(os.path.join(args.out, "top-movies.csv"), "w", newline="") as f:
    out = csv.writer(f, lineterminator="\n")
    out.writerow(["rank", "movie_id", "score", "avg_rating", "rating_count"])
    for rank, r in enumerate(top, 1):
        out.writerow([rank, r["movieId"], repr(r["score"]), repr(r["avg_rating"]), r["rating_count"]])


def write_single_csv(frame, key, name):
    """Spark's own CSV writer into one part file, renamed to DIR/name."""
    tmp = os.path.join(args.out, f".{name}.parts")
    shutil.rmtree(tmp, ignore_errors=True)
    (
        frame.orderBy(key)
        .select(
            F.col(key).alias(key.replace("Id", "_id")),
            "avg_rating",
            "rating_count",
            "std_dev",
            F.date_format(F.timestamp_seconds("last_ts"), "yyyy-MM-dd'T'HH:mm:ss'Z'").alias("last_update"),
        )
        .coalesce(1)
        .write.option("header", True)
        .csv(tmp)
    )
    parts = glob.glob(os.path.join(tmp, "part-*.csv"))
    if len(parts) != 1:
        sys.exit(f"expected one part file in {tmp}, found {parts}")
    os.replace(parts[0], os.path.join(args.out, name))
    shutil.rmtree(tmp)


write_single_csv(movie_stats, "movieId", "movie-features.csv")
write_single_csv(user_stats, "userId", "user-features.csv")
n_movies = movie_stats.count()

spark.stop()
# Let the JVM exit and reap it, so that `/usr/bin/time` on this script sees the
# JVM's peak RSS (the JVM is this process's child; an unreaped child is not counted).
gateway = SparkContext._gateway
proc = getattr(gateway, "proc", None)
if proc is not None:
    try:
        gateway.shutdown()
    except Exception:  # noqa: BLE001 - best effort
        pass
    proc.stdin.close()
    try:
        proc.wait(timeout=60)
    except Exception:  # noqa: BLE001
        proc.kill()
        proc.wait()
print(
    f"pyspark job done in {time.time() - started:.1f}s (session start {session_s:.1f}s); "
    f"C = {mean_rating!r}; {n_movies} movies, top {len(top)} written to {args.out}"
)
