//! A plan's statements sent to PostgreSQL in one round trip, in order, optionally with
//! the transaction's `COMMIT` behind them.
//!
//! tokio-postgres sends a request when its future is first polled, and `try_join_all`
//! (under 30 futures) polls them in the order given: the server runs them in that order,
//! the same order as awaiting each in turn, without waiting for each answer (measured:
//! one round trip per statement was a third of a batch's time on a loopback server).
//! If one fails, PostgreSQL aborts the transaction and answers the `COMMIT` behind it
//! with a rollback; its error is what `send` returns.

use std::future::Future;
use std::pin::Pin;

use deadpool_postgres::GenericClient;
use futures_util::future::try_join_all;
use tokio_postgres::types::ToSql;

use crate::store::StoreError;

pub(crate) type Param<'a> = Box<dyn ToSql + Sync + Send + 'a>;

/// Past this many requests `try_join_all` stops polling in order.
const MAX_IN_ORDER: usize = 30;

#[derive(Default)]
pub(crate) struct Pipeline<'a> {
    steps: Vec<(&'static str, Vec<Param<'a>>)>,
}

type Sent<'f> = Pin<Box<dyn Future<Output = Result<u64, tokio_postgres::Error>> + Send + 'f>>;

impl<'a> Pipeline<'a> {
    pub fn push(&mut self, sql: &'static str, params: Vec<Param<'a>>) {
        self.steps.push((sql, params));
    }

    /// Runs the statements in order (then `COMMIT` if `commit`).
    pub async fn send<C: GenericClient + Sync>(self, c: &C, commit: bool) -> Result<(), StoreError> {
        if self.steps.len() + usize::from(commit) > MAX_IN_ORDER {
            // Never the case for a plan (one statement per table); kept correct anyway.
            for (sql, params) in &self.steps {
                let stmt = c.prepare_cached(sql).await?;
                c.execute(&stmt, &refs(params)).await?;
            }
            if commit {
                c.batch_execute("COMMIT").await?;
            }
            return Ok(());
        }
        // Preparing is a round trip only the first time on a connection.
        let statements = try_join_all(self.steps.iter().map(|(sql, _)| c.prepare_cached(sql))).await?;
        let params: Vec<Vec<&(dyn ToSql + Sync)>> = self.steps.iter().map(|(_, p)| refs(p)).collect();
        let mut sent: Vec<Sent<'_>> = Vec::with_capacity(statements.len() + 1);
        for (stmt, p) in statements.iter().zip(&params) {
            sent.push(Box::pin(c.execute(stmt, p)));
        }
        if commit {
            sent.push(Box::pin(async { c.batch_execute("COMMIT").await.map(|()| 0) }));
        }
        try_join_all(sent).await?;
        Ok(())
    }
}

fn refs<'p>(params: &'p [Param<'_>]) -> Vec<&'p (dyn ToSql + Sync)> {
    params.iter().map(|b| &**b as &(dyn ToSql + Sync)).collect()
}
