//! Pod events as the kubelet records them: core/v1 Events (what the `system:node` role may
//! write), source `kubelet` on the node, repeats counted on the first event (`x3 over 20s`).

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::chrono::Utc;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};

/// (object uid, field, reason, message) → (event name, count).
type Seen = HashMap<(String, String, String, String), (String, i32)>;

pub struct Recorder {
    client: Client,
    node: String,
    seen: tokio::sync::Mutex<Seen>,
}

impl Recorder {
    pub fn new(client: Client, node: &str) -> Recorder {
        Recorder { client, node: node.into(), seen: Default::default() }
    }

    /// Record one event about `object`.
    pub async fn record(
        &self,
        object: &ObjectReference,
        warning: bool,
        reason: &str,
        message: &str,
    ) -> Result<(), kube::Error> {
        let ns = object.namespace.clone().unwrap_or_else(|| "default".into());
        let api = Api::<Event>::namespaced(self.client.clone(), &ns);
        let key = (
            object.uid.clone().unwrap_or_default(),
            object.field_path.clone().unwrap_or_default(),
            reason.to_string(),
            message.to_string(),
        );
        let now = Utc::now();
        let mut seen = self.seen.lock().await;
        if let Some((name, count)) = seen.get_mut(&key) {
            *count += 1;
            let patch = serde_json::json!({ "count": *count, "lastTimestamp": Time(now) });
            if api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.is_ok() {
                return Ok(());
            }
            // Expired (events live an hour): record it anew.
            seen.remove(&key);
        }
        let name =
            format!("{}.{:x}", object.name.clone().unwrap_or_default(), now.timestamp_nanos_opt().unwrap_or_default());
        let ev = Event {
            metadata: ObjectMeta { name: Some(name.clone()), namespace: Some(ns), ..Default::default() },
            involved_object: object.clone(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some(if warning { "Warning" } else { "Normal" }.into()),
            source: Some(EventSource { component: Some("kubelet".into()), host: Some(self.node.clone()) }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: None::<MicroTime>,
            count: Some(1),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(self.node.clone()),
            ..Default::default()
        };
        api.create(&PostParams::default(), &ev).await?;
        seen.insert(key, (name, 1));
        Ok(())
    }
}
