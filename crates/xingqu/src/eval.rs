//! `xingqu eval`: the recommender against the popularity and item-kNN baselines, in one run, on
//! one split, ranking over all items.

use anyhow::{Context, bail};
use clap::Args;
use std::time::Instant;
use xingqu_feed::eval::{evaluate, evaluate_reranked};
use xingqu_feed::metrics::Metrics;
use xingqu_feed::models::{Ease, ItemKnn, Popularity, Recommender, histories, recency_weights};
use xingqu_feed::rerank::{Rules, TrafficSupport};
use xingqu_feed::split::{Protocol, split};

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// CSV or TSV of user,item,timestamp[,weight] (`scripts/fetch-movielens.sh` makes one).
    #[arg(long)]
    interactions: std::path::PathBuf,
    /// random-75-25, temporal-80-20 or last-basket.
    #[arg(long, default_value = "random-75-25")]
    protocol: String,
    /// Seed of the random split.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// EASE's L2 regularisation.
    #[arg(long, default_value_t = 300.0)]
    lambda: f64,
    /// Recency: a history item one half-life (in items) older than the latest weighs half as much.
    #[arg(long, default_value_t = 10.0)]
    half_life: f32,
    /// Recency: the least weight an old history item keeps.
    #[arg(long, default_value_t = 0.6)]
    floor: f32,
    /// Neighbours per item for the item-kNN baseline.
    #[arg(long, default_value_t = 100)]
    knn_k: usize,
    /// Print one JSON object with the figures as the last line.
    #[arg(long)]
    json: bool,
}

fn metrics_json(metrics: &Metrics, train_s: f64) -> serde_json::Value {
    serde_json::json!({
        "precision_at_10": metrics.precision,
        "recall_at_10": metrics.recall,
        "ndcg_at_10": metrics.ndcg,
        "map_at_10": metrics.map,
        "hr_at_10": metrics.hit_rate,
        "coverage": metrics.coverage,
        "users": metrics.users,
        "train_s": train_s,
    })
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let Some(protocol) = Protocol::parse(&args.protocol, args.seed) else {
        bail!("--protocol must be random-75-25, temporal-80-20 or last-basket");
    };
    let text =
        std::fs::read_to_string(&args.interactions).with_context(|| format!("read {}", args.interactions.display()))?;
    let log = xingqu_feed::interactions::parse(&text)?;
    let split = split(&log, protocol);
    let histories = histories(&split.train, log.n_users);
    let weights = recency_weights(&split.train, &histories, args.half_life, args.floor);
    println!(
        "{}: {} users, {} items, {} interactions ({} in training), protocol {}",
        args.interactions.display(),
        log.n_users,
        log.n_items,
        log.interactions.len(),
        split.train.len(),
        protocol.name()
    );
    let mut models: Vec<Box<dyn Recommender>> = vec![
        Box::new(Ease::new(args.lambda, 20_000)),
        Box::new(Popularity::default()),
        Box::new(ItemKnn::new(args.knn_k)),
    ];
    let mut report = serde_json::Map::new();
    report.insert("protocol".into(), protocol.name().into());
    println!(
        "{:<12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
        "model", "P@10", "R@10", "NDCG@10", "MAP@10", "HR@10", "coverage", "train s"
    );
    for model in &mut models {
        let started = Instant::now();
        model.fit(&histories, log.n_items).map_err(|e| anyhow::anyhow!("{}: {e}", model.name()))?;
        let train_s = started.elapsed().as_secs_f64();
        let metrics = evaluate(model.as_ref(), &split, &histories, &weights, log.n_items, protocol);
        println!(
            "{:<12} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>9.4} {:>9.2}",
            model.name(),
            metrics.precision,
            metrics.recall,
            metrics.ndcg,
            metrics.map,
            metrics.hit_rate,
            metrics.coverage,
            train_s
        );
        report.insert(model.name().into(), metrics_json(&metrics, train_s));
    }
    // What traffic support costs: a programme over a tenth of the catalogue (every tenth item,
    // standing in for e.g. farm specialties) with a 15% exposure target, on the project's model.
    let mut ease = Ease::new(args.lambda, 20_000);
    ease.fit(&histories, log.n_items).map_err(|e| anyhow::anyhow!("xingqu: {e}"))?;
    let plain = evaluate(&ease, &split, &histories, &weights, log.n_items, protocol);
    let mut supports = Vec::new();
    for (target, name) in [(0.15, "support_15"), (0.30, "support_30")] {
        let rules = Rules {
            supports: vec![TrafficSupport { name: name.into(), bit: 0, target_share: target }],
            ..Rules::default()
        };
        let tagged = |item: u32| u32::from(item.is_multiple_of(10));
        let (metrics, exposure) =
            evaluate_reranked(&ease, &split, &histories, &weights, log.n_items, protocol, &rules, &tagged);
        println!(
            "traffic support {:>3.0}% target (every 10th item): delivered {:.1}% of exposure, NDCG@10 {:.4} → {:.4} ({:+.4})",
            target * 100.0,
            exposure.share(0) * 100.0,
            plain.ndcg,
            metrics.ndcg,
            metrics.ndcg - plain.ndcg
        );
        supports.push(serde_json::json!({
            "target_share": target,
            "delivered_share": exposure.share(0),
            "ndcg_at_10": metrics.ndcg,
            "ndcg_cost": plain.ndcg - metrics.ndcg,
        }));
    }
    report.insert("traffic_support".into(), supports.into());
    if args.json {
        println!("{}", serde_json::Value::Object(report));
    }
    Ok(())
}
