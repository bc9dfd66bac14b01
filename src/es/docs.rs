//! Single-document calls with optimistic concurrency: the state index's
//! compare-and-set rests on these.

use elasticsearch::http::Method;
use serde::Deserialize;
use serde_json::Value;

use super::{seg, Body, EsClient, EsError};

/// A document with the sequence number and primary term it was read at.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionedDoc {
    pub source: Value,
    pub seq_no: i64,
    pub primary_term: i64,
}

/// How a write must relate to what is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteCondition {
    /// Only if no document with this id exists (`op_type=create`).
    Absent,
    /// Only if the stored document is still at this sequence number and term.
    At { seq_no: i64, primary_term: i64 },
}

#[derive(Deserialize)]
struct GetResponse {
    found: bool,
    #[serde(rename = "_seq_no")]
    seq_no: Option<i64>,
    #[serde(rename = "_primary_term")]
    primary_term: Option<i64>,
    #[serde(rename = "_source")]
    source: Option<Value>,
}

#[derive(Deserialize)]
struct WriteResponse {
    #[serde(rename = "_seq_no")]
    seq_no: i64,
    #[serde(rename = "_primary_term")]
    primary_term: i64,
}

impl EsClient {
    /// `GET /{index}/_doc/{id}`; `None` when the document or the index is missing.
    pub async fn get_doc(&self, index: &str, id: &str) -> Result<Option<VersionedDoc>, EsError> {
        let path = format!("/{}/_doc/{}", seg(index), seg(id));
        let (status, bytes) = self.send_raw(Method::Get, &path, &[], None, None).await?;
        if status == 404 {
            return Ok(None);
        }
        if status != 200 {
            return Err(super::status_error(Method::Get, &path, status, &bytes));
        }
        let got: GetResponse = super::decode(Method::Get, &path, &bytes)?;
        match (got.found, got.seq_no, got.primary_term, got.source) {
            (false, ..) => Ok(None),
            (true, Some(seq_no), Some(primary_term), Some(source)) => Ok(Some(VersionedDoc {
                source,
                seq_no,
                primary_term,
            })),
            _ => Err(EsError::Decode {
                call: format!("GET {path}"),
                detail: "document without _seq_no, _primary_term or _source".into(),
            }),
        }
    }

    /// Writes a document only if `condition` holds; a lost race is an
    /// [`EsError::Status`] with status 409. Refreshes so searches see it.
    /// Returns the new sequence number and primary term.
    pub async fn put_doc(
        &self,
        index: &str,
        id: &str,
        source: &Value,
        condition: WriteCondition,
    ) -> Result<(i64, i64), EsError> {
        let path = format!("/{}/_doc/{}", seg(index), seg(id));
        let (seq, term);
        let query: Vec<(&str, &str)> = match condition {
            WriteCondition::Absent => vec![("op_type", "create"), ("refresh", "true")],
            WriteCondition::At {
                seq_no,
                primary_term,
            } => {
                seq = seq_no.to_string();
                term = primary_term.to_string();
                vec![
                    ("if_seq_no", &seq),
                    ("if_primary_term", &term),
                    ("refresh", "true"),
                ]
            }
        };
        let written: WriteResponse = self
            .send_json(Method::Put, &path, &query, Some(Body::json(source)))
            .await?;
        Ok((written.seq_no, written.primary_term))
    }

    /// Deletes a document only if it is still at `seq_no`/`primary_term`.
    pub async fn delete_doc(
        &self,
        index: &str,
        id: &str,
        seq_no: i64,
        primary_term: i64,
    ) -> Result<(), EsError> {
        let path = format!("/{}/_doc/{}", seg(index), seg(id));
        let (seq, term) = (seq_no.to_string(), primary_term.to_string());
        let query = [
            ("if_seq_no", seq.as_str()),
            ("if_primary_term", term.as_str()),
            ("refresh", "true"),
        ];
        self.send_ok(Method::Delete, &path, &query, None, None)
            .await
            .map(drop)
    }

    /// Sources of up to `size` documents of `index`, sorted by `_id`'s
    /// stored twin `sort_field`; empty when the index is missing.
    pub async fn all_docs(
        &self,
        index: &str,
        sort_field: &str,
        size: u32,
    ) -> Result<Vec<Value>, EsError> {
        #[derive(Deserialize)]
        struct Hits {
            hits: Vec<HitSource>,
        }
        #[derive(Deserialize)]
        struct HitSource {
            #[serde(rename = "_source")]
            source: Value,
        }
        #[derive(Deserialize)]
        struct Found {
            hits: Hits,
        }
        let path = format!("/{}/_search", seg(index));
        let body = serde_json::json!({"size": size, "sort": [{sort_field: "asc"}], "query": {"match_all": {}}});
        let (status, bytes) = self
            .send_raw(Method::Post, &path, &[], Some(Body::json(&body)), None)
            .await?;
        if status == 404 {
            return Ok(Vec::new());
        }
        if status != 200 {
            return Err(super::status_error(Method::Post, &path, status, &bytes));
        }
        let found: Found = super::decode(Method::Post, &path, &bytes)?;
        Ok(found.hits.hits.into_iter().map(|h| h.source).collect())
    }
}
