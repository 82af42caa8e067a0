//! The DDI resources' JSON, as far as the client reads and writes it.

use serde_json::{Value, json};

/// What a poll of the controller resource says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Poll {
    /// `config.polling.sleep`, in seconds.
    pub sleep_secs: Option<u64>,
    /// `_links.deploymentBase.href`.
    pub deployment_base: Option<String>,
    /// `_links.cancelAction.href`.
    pub cancel_action: Option<String>,
    /// `_links.configData.href`: the server wants the device's attributes.
    pub config_data: Option<String>,
}

impl Poll {
    /// Reads a poll answer.
    pub fn parse(body: &[u8]) -> Result<Poll, String> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
        let link = |name: &str| {
            v["_links"][name]["href"]
                .as_str()
                .map(str::to_owned)
                .filter(|h| !h.is_empty())
        };
        let sleep_secs = match v["config"]["polling"]["sleep"].as_str() {
            Some(text) => Some(
                parse_sleep(text)
                    .ok_or_else(|| format!("config.polling.sleep `{text}` is not HH:MM:SS"))?,
            ),
            None => None,
        };
        Ok(Poll {
            sleep_secs,
            deployment_base: link("deploymentBase"),
            cancel_action: link("cancelAction"),
            config_data: link("configData"),
        })
    }
}

/// `HH:MM:SS` in seconds.
pub fn parse_sleep(text: &str) -> Option<u64> {
    let mut parts = text.trim().split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let num = |p: &str| p.parse::<u64>().ok();
    let (h, m, s) = (num(h)?, num(m)?, num(s)?);
    (m < 60 && s < 60).then_some(h * 3600 + m * 60 + s)
}

/// One artifact of a deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    /// `filename`.
    pub filename: String,
    /// `size`.
    pub size: u64,
    /// `hashes.sha256`, hex.
    pub sha256: Option<String>,
    /// `hashes.sha1`, hex.
    pub sha1: Option<String>,
    /// `_links.download.href` (HTTPS), else `_links.download-http.href`.
    pub url: String,
}

/// A deployment's chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// `part` (e.g. `os`, `bApp`).
    pub part: String,
    /// `name`.
    pub name: String,
    /// `version`.
    pub version: String,
    /// Its artifacts.
    pub artifacts: Vec<Artifact>,
}

/// `deployment.download` / `deployment.update`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Not now.
    Skip,
    /// When the device sees fit.
    Attempt,
    /// At once.
    Forced,
}

/// A deploymentBase resource.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentBase {
    /// The action id.
    pub id: String,
    /// `deployment.download`.
    pub download: Handling,
    /// `deployment.update`.
    pub update: Handling,
    /// `deployment.maintenanceWindow` is `unavailable`.
    pub window_closed: bool,
    /// `deployment.chunks`.
    pub chunks: Vec<Chunk>,
}

impl DeploymentBase {
    /// Reads a deploymentBase answer; every fault names the field.
    pub fn parse(body: &[u8]) -> Result<DeploymentBase, String> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
        let id = match &v["id"] {
            Value::String(s) if !s.is_empty() => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err("id: missing".into()),
        };
        if !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        {
            return Err(format!("id: `{id}` is not an action id"));
        }
        let d = &v["deployment"];
        let handling = |field: &str| match d[field].as_str() {
            Some("skip") => Ok(Handling::Skip),
            Some("attempt") | None => Ok(Handling::Attempt),
            Some("forced") => Ok(Handling::Forced),
            Some(other) => Err(format!(
                "deployment.{field}: `{other}` is not skip, attempt or forced"
            )),
        };
        let download = handling("download")?;
        let update = handling("update")?;
        let window_closed = d["maintenanceWindow"].as_str() == Some("unavailable");
        let mut chunks = Vec::new();
        for (i, c) in d["chunks"].as_array().into_iter().flatten().enumerate() {
            let text = |field: &str| c[field].as_str().unwrap_or_default().to_owned();
            let mut artifacts = Vec::new();
            for (j, a) in c["artifacts"].as_array().into_iter().flatten().enumerate() {
                let at = format!("deployment.chunks[{i}].artifacts[{j}]");
                let filename = a["filename"]
                    .as_str()
                    .filter(|f| !f.is_empty())
                    .ok_or_else(|| format!("{at}.filename: missing"))?
                    .to_owned();
                let size = a["size"]
                    .as_u64()
                    .ok_or_else(|| format!("{at}.size: missing"))?;
                let hash = |name: &str| {
                    a["hashes"][name]
                        .as_str()
                        .map(|h| h.to_ascii_lowercase())
                        .filter(|h| !h.is_empty())
                };
                let url = a["_links"]["download"]["href"]
                    .as_str()
                    .or_else(|| a["_links"]["download-http"]["href"].as_str())
                    .ok_or_else(|| format!("{at}._links: no download link"))?
                    .to_owned();
                artifacts.push(Artifact {
                    filename,
                    size,
                    sha256: hash("sha256"),
                    sha1: hash("sha1"),
                    url,
                });
            }
            chunks.push(Chunk {
                part: text("part"),
                name: text("name"),
                version: text("version"),
                artifacts,
            });
        }
        Ok(DeploymentBase {
            id,
            download,
            update,
            window_closed,
            chunks,
        })
    }
}

/// `cancelAction.stopId`.
pub fn stop_id(body: &[u8]) -> Result<String, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    match &v["cancelAction"]["stopId"] {
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err("cancelAction.stopId: missing".into()),
    }
}

/// An action's `execution` in feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Execution {
    /// Working on it.
    Proceeding,
    /// Done (with a result).
    Closed,
}

/// A feedback body.
pub fn feedback(
    execution: Execution,
    finished: Option<bool>,
    progress: Option<(u64, u64)>,
    details: &[String],
) -> Vec<u8> {
    let mut result = json!({
        "finished": match finished {
            Some(true) => "success",
            Some(false) => "failure",
            None => "none",
        }
    });
    if let Some((cnt, of)) = progress {
        result["progress"] = json!({"cnt": cnt, "of": of});
    }
    json!({
        "status": {
            "execution": match execution {
                Execution::Proceeding => "proceeding",
                Execution::Closed => "closed",
            },
            "result": result,
            "details": details,
        }
    })
    .to_string()
    .into_bytes()
}

/// A configData body: the attributes, merged into what the server has.
pub fn config_data(attributes: &std::collections::BTreeMap<String, String>) -> Vec<u8> {
    json!({"mode": "merge", "data": attributes})
        .to_string()
        .into_bytes()
}

/// The resource's URL without its query (`?c=…`), to which `/feedback` is added.
pub fn without_query(href: &str) -> &str {
    href.split(['?', '#']).next().unwrap_or(href)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_reads_links_and_the_interval() {
        let body = br#"{"config":{"polling":{"sleep":"00:05:07"}},"_links":{
            "deploymentBase":{"href":"http://h/DEFAULT/controller/v1/d/deploymentBase/7?c=-1"},
            "configData":{"href":"http://h/DEFAULT/controller/v1/d/configData"}}}"#;
        let poll = Poll::parse(body).unwrap();
        assert_eq!(poll.sleep_secs, Some(307));
        assert_eq!(
            without_query(poll.deployment_base.as_deref().unwrap()),
            "http://h/DEFAULT/controller/v1/d/deploymentBase/7"
        );
        assert!(poll.cancel_action.is_none());
        assert!(poll.config_data.is_some());
        assert!(Poll::parse(br#"{"config":{"polling":{"sleep":"5 min"}}}"#).is_err());
        assert_eq!(parse_sleep("12:00:00"), Some(43200));
        assert_eq!(parse_sleep("00:61:00"), None);
    }

    #[test]
    fn deployment_base_names_what_is_missing() {
        let body = br#"{"id":"12","deployment":{"download":"forced","update":"skip",
            "maintenanceWindow":"unavailable","chunks":[{"part":"os","name":"fw","version":"2.0",
            "artifacts":[{"filename":"fw.swu","size":10,"hashes":{"sha1":"AB"},
            "_links":{"download-http":{"href":"http://h/fw.swu"}}}]}]}}"#;
        let d = DeploymentBase::parse(body).unwrap();
        assert_eq!(d.id, "12");
        assert_eq!((d.download, d.update), (Handling::Forced, Handling::Skip));
        assert!(d.window_closed);
        let a = &d.chunks[0].artifacts[0];
        assert_eq!((a.sha1.as_deref(), a.sha256.as_deref()), (Some("ab"), None));
        assert_eq!(a.url, "http://h/fw.swu");
        let e = DeploymentBase::parse(
            br#"{"id":3,"deployment":{"chunks":[{"artifacts":[{"filename":"x","hashes":{}}]}]}}"#,
        )
        .unwrap_err();
        assert_eq!(e, "deployment.chunks[0].artifacts[0].size: missing");
        let e = DeploymentBase::parse(br#"{"id":"../x"}"#).unwrap_err();
        assert!(e.contains("not an action id"), "{e}");
    }

    #[test]
    fn feedback_says_what_hawkbit_reads() {
        let body = feedback(
            Execution::Closed,
            Some(true),
            Some((2, 2)),
            &["done".into()],
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["status"]["execution"], "closed");
        assert_eq!(v["status"]["result"]["finished"], "success");
        assert_eq!(v["status"]["result"]["progress"]["of"], 2);
        assert_eq!(v["status"]["details"][0], "done");
        assert_eq!(
            stop_id(br#"{"id":"5","cancelAction":{"stopId":"4"}}"#).unwrap(),
            "4"
        );
    }
}
