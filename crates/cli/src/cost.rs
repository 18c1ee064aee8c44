//! `movierec aws cost`: prices from a file, the estimate for both layouts,
//! printed as the seed's table (or JSON).

use crate::cli::AwsCommand;
use anyhow::{Context, Result};
use movierec_aws::cost::{Estimate, Layout, PriceBook, Workload, estimate};
use movierec_config::Config;
use std::path::Path;

const DEFAULT_PRICES: &str = "config/aws-prices.yaml";
const BUILT_IN_PRICES: &str = include_str!("../../../config/aws-prices.yaml");

pub fn run(config: &Config, command: &AwsCommand) -> Result<()> {
    let AwsCommand::Cost {
        ratings,
        users,
        movies,
        reads_per_month,
        region,
        prices,
        bytes_per_rating,
        events_per_object,
        feature_item_bytes,
        batch_runs_per_month,
        emr_hours,
        emr_core_nodes,
        ec2_hours,
        rds_hours,
        transfer_gb,
        json,
    } = command;
    let (text, origin) = match prices {
        Some(path) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the prices file {}", path.display()))?,
            path.display().to_string(),
        ),
        None if Path::new(DEFAULT_PRICES).is_file() => (
            std::fs::read_to_string(DEFAULT_PRICES)
                .with_context(|| format!("cannot read {DEFAULT_PRICES}"))?,
            DEFAULT_PRICES.to_string(),
        ),
        None => (
            BUILT_IN_PRICES.to_string(),
            "the built-in prices (config/aws-prices.yaml)".to_string(),
        ),
    };
    let book = PriceBook::parse(&text, &origin)?;
    let unit_prices = book.region(region)?;
    for (name, value) in [
        ("--emr-hours", *emr_hours),
        ("--ec2-hours", *ec2_hours),
        ("--rds-hours", *rds_hours),
        ("--transfer-gb", *transfer_gb),
    ] {
        anyhow::ensure!(
            value.is_finite() && value >= 0.0,
            "{name}: expected a non-negative number, got {value}"
        );
    }
    let workload = Workload {
        ratings: *ratings,
        users: *users,
        movies: *movies,
        reads_per_month: *reads_per_month,
        bytes_per_rating: *bytes_per_rating,
        events_per_object: events_per_object.unwrap_or(config.kafka.max_batch_events as u64),
        feature_item_bytes: *feature_item_bytes,
        batch_runs_per_month: *batch_runs_per_month,
        emr_hours: *emr_hours,
        emr_core_nodes: *emr_core_nodes,
        ec2_hours: *ec2_hours,
        rds_hours: *rds_hours,
        transfer_gb: *transfer_gb,
    };
    anyhow::ensure!(
        workload.events_per_object > 0,
        "--events-per-object: expected at least 1"
    );
    let seed = estimate(&workload, unit_prices, Layout::Seed);
    let ours = estimate(&workload, unit_prices, Layout::Movierec);
    if *json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "region": region,
                "prices": origin,
                "workload": workload,
                "seed": seed,
                "movierec": ours,
            }))?
        );
        return Ok(());
    }
    println!("AWS cost estimate, {region}, prices from {origin} (USD, on-demand, no free tier)");
    println!(
        "{} ratings ({} bytes each), {} users, {} movies, {} DynamoDB reads/month, {} batch runs/month\n",
        workload.ratings,
        workload.bytes_per_rating,
        workload.users,
        workload.movies,
        workload.reads_per_month,
        workload.batch_runs_per_month
    );
    for (title, estimate) in [
        ("seed layout: one S3 object per event", &seed),
        ("movierec layout: one S3 object per consumer batch", &ours),
    ] {
        print_table(title, estimate);
    }
    println!(
        "movierec vs seed: one-time ${:.2} vs ${:.2}, monthly ${:.2} vs ${:.2}",
        ours.one_time, seed.one_time, ours.monthly, seed.monthly
    );
    Ok(())
}

fn print_table(title: &str, estimate: &Estimate) {
    println!("{title}");
    println!(
        "| Service | What | Quantity | Unit | Unit price | Cost | When |\n| --- | --- | --- | --- | --- | --- | --- |"
    );
    for line in &estimate.lines {
        println!(
            "| {} | {} | {} | {} | ${} | ${:.4} | {} |",
            line.service,
            line.what,
            quantity(line.quantity),
            line.unit,
            line.unit_price,
            line.cost,
            if line.one_time { "once" } else { "per month" }
        );
    }
    println!(
        "| **Total** | | | | | **${:.2} once + ${:.2}/month** | |\n",
        estimate.one_time, estimate.monthly
    );
}

fn quantity(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.4}")
    }
}
