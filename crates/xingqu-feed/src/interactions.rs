//! The interaction log: who touched what, when, how strongly; with dense indices for users and items.

use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interaction {
    pub user: u32,
    pub item: u32,
    pub timestamp: i64,
    pub weight: f32,
}

/// Interactions with users and items numbered densely from 0.
#[derive(Debug, Clone, Default)]
pub struct Log {
    pub interactions: Vec<Interaction>,
    pub n_users: usize,
    pub n_items: usize,
    /// The original id of each dense item index.
    pub item_ids: Vec<String>,
    pub user_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("line {line}: expected user,item,timestamp[,weight]")]
    Shape { line: usize },
    #[error("line {line}: {field} is not a number")]
    Number { line: usize, field: &'static str },
    #[error("no interactions")]
    Empty,
}

/// Parses CSV or TSV text (the delimiter is guessed from the first line): `user,item,timestamp`
/// with an optional fourth `weight` column (default 1). A first line whose timestamp is not a
/// number is taken for a header.
pub fn parse(text: &str) -> Result<Log, ParseError> {
    let delimiter = if text.lines().next().is_some_and(|l| l.contains('\t')) { '\t' } else { ',' };
    let mut users: HashMap<String, u32> = HashMap::new();
    let mut items: HashMap<String, u32> = HashMap::new();
    let mut log = Log::default();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(delimiter).map(str::trim).collect();
        if fields.len() < 3 || fields.len() > 4 {
            return Err(ParseError::Shape { line: line_no });
        }
        let Ok(timestamp) = fields[2].parse::<i64>() else {
            if index == 0 {
                continue;
            }
            return Err(ParseError::Number { line: line_no, field: "timestamp" });
        };
        let weight = match fields.get(3) {
            Some(w) => w.parse::<f32>().map_err(|_| ParseError::Number { line: line_no, field: "weight" })?,
            None => 1.0,
        };
        let next_user = users.len() as u32;
        let user = *users.entry(fields[0].to_owned()).or_insert_with(|| {
            log.user_ids.push(fields[0].to_owned());
            next_user
        });
        let next_item = items.len() as u32;
        let item = *items.entry(fields[1].to_owned()).or_insert_with(|| {
            log.item_ids.push(fields[1].to_owned());
            next_item
        });
        log.interactions.push(Interaction { user, item, timestamp, weight });
    }
    if log.interactions.is_empty() {
        return Err(ParseError::Empty);
    }
    log.n_users = users.len();
    log.n_items = items.len();
    Ok(log)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_csv_with_header_and_tsv_without() {
        let log = parse("user,item,timestamp\nu1,a,10\nu2,a,11\nu1,b,12\n").expect("csv");
        assert_eq!((log.n_users, log.n_items, log.interactions.len()), (2, 2, 3));
        assert_eq!(log.interactions[2], Interaction { user: 0, item: 1, timestamp: 12, weight: 1.0 });
        let tsv = parse("1\t2\t3\t0.5\n").expect("tsv");
        assert_eq!(tsv.interactions[0].weight, 0.5);
        assert!(matches!(parse("a,b\n"), Err(ParseError::Shape { line: 1 })));
        assert!(matches!(parse("u,i,1\nu,i,x\n"), Err(ParseError::Number { line: 2, .. })));
        assert!(matches!(parse(""), Err(ParseError::Empty)));
    }
}
