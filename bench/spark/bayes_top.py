"""The seed's Spark job (Bayesian top-N over MovieLens ratings) plus the same
features movierec computes, for the benchmark's anchor and parity check.

python bench/spark/bayes_top.py --ratings ratings.csv --out DIR [--master local[2]]
Writes DIR/top-movies.csv, DIR/movie-features.csv, DIR/user-features.csv.
"""
import argparse
import csv
import os
import time

from pyspark.sql import SparkSession, Window, functions as F
from pyspark.sql.types import DoubleType, LongType, StructField, StructType

p = argparse.ArgumentParser()
p.add_argument("--ratings", required=True)
p.add_argument("--out", required=True)
p.add_argument("--min-ratings", type=int, default=50)
p.add_argument("--top-n", type=int, default=1000)
p.add_argument("--master", default="local[2]")
p.add_argument("--driver-memory", default="6g")
args = p.parse_args()

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
started = time.time()
spark = (
    SparkSession.builder.appName("movierec-bench-bayes-top")
    .master(args.master)
    .config("spark.ui.enabled", "false")
    .config("spark.driver.memory", args.driver_memory)
    .config("spark.sql.adaptive.enabled", "true")
    .config("spark.sql.shuffle.partitions", "8")
    .getOrCreate()
)
schema = StructType([
    StructField("userId", LongType()), StructField("movieId", LongType()),
    StructField("rating", DoubleType()), StructField("timestamp", LongType()),
])
ratings = spark.read.csv(args.ratings, header=True, schema=schema)
# Latest rating per (user, movie): newest timestamp wins.
w = Window.partitionBy("userId", "movieId").orderBy(F.col("timestamp").desc())
latest = ratings.withColumn("rn", F.row_number().over(w)).filter("rn = 1").drop("rn").cache()

def features(key):
    return latest.groupBy(key).agg(
        F.avg("rating").alias("avg_rating"),
        F.count("rating").alias("rating_count"),
        F.coalesce(F.stddev_samp("rating"), F.lit(0.0)).alias("std_dev"),
        F.max("timestamp").alias("last_update"),
    )

movie_stats = features("movieId").cache()
user_stats = features("userId")
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
    out = csv.writer(f)
    out.writerow(["rank", "movie_id", "score", "avg_rating", "rating_count"])
    for rank, r in enumerate(top, 1):
        out.writerow([rank, r["movieId"], repr(r["score"]), repr(r["avg_rating"]), r["rating_count"]])
for name, frame, key in [("movie-features.csv", movie_stats, "movieId"), ("user-features.csv", user_stats, "userId")]:
    with open(os.path.join(args.out, name), "w", newline="") as f:
        out = csv.writer(f)
        out.writerow([key.replace("Id", "_id"), "avg_rating", "rating_count", "std_dev", "last_update"])
        for r in frame.orderBy(key).toLocalIterator():
            out.writerow([r[key], repr(r["avg_rating"]), r["rating_count"], repr(r["std_dev"]), r["last_update"]])
spark.stop()
print(f"spark job done in {time.time() - started:.1f}s (C = {mean_rating})")
