//! Campaigns on Kubernetes: an Indexed Job runs the plan once per drive (completion index
//! `i` writes `/results/task-i`), a second Job merges them. Drives reach the pods through
//! the SR-IOV device plugin as a generic PCI resource (`deviceType: accelerator`, functions
//! on vfio-pci), which names the allocated function in `PCIDEVICE_<PREFIX>_<NAME>`.
//!
//! The manifests are plain YAML written from templates: nothing here talks to a cluster.

use std::fmt::Write;

/// A campaign for Kubernetes.
#[derive(Clone, Debug)]
pub struct KubeCampaign {
    /// Name of the Jobs (DNS label: lowercase letters, digits, `-`).
    pub name: String,
    /// Namespace of the Jobs.
    pub namespace: String,
    /// The plan's file name and text (carried in a ConfigMap).
    pub plan: (String, String),
    /// Drives: Job completions, one pod each.
    pub drives: usize,
    /// Pods running at once.
    pub parallelism: usize,
    /// Container image with nvplan at `/usr/local/bin/nvplan`.
    pub image: String,
    /// The device plugin's resource, `<prefix>/<name>` (e.g. `nvplan.io/nvme`).
    pub resource: String,
    /// PersistentVolumeClaim (ReadWriteMany) of the results.
    pub results_claim: String,
    /// CPUs per pod: the most workers a phase run of the plan has.
    pub cpus: usize,
    /// `--time-scale` of the runs.
    pub time_scale: f64,
}

/// Whether `s` is a DNS-1123 label, as Kubernetes names must be.
pub fn dns_label(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') && !s.starts_with('-') && !s.ends_with('-')
}

/// `value` as a double-quoted YAML scalar.
fn quoted(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

impl KubeCampaign {
    /// The environment variable the device plugin sets to the allocated function's PCI
    /// address: `PCIDEVICE_` and the resource, upper case, `.` and `/` as `_`.
    pub fn device_env(&self) -> String {
        let up: String = self.resource.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
        format!("PCIDEVICE_{up}")
    }

    /// Checks the names Kubernetes will insist on.
    pub fn check(&self) -> Result<(), String> {
        if !dns_label(&self.name) {
            return Err(format!("--name {}: Kubernetes wants a DNS label: lowercase letters, digits and `-`, at most 63", self.name));
        }
        if !self.resource.contains('/') {
            return Err(format!("--resource {}: write it as <prefix>/<name>, e.g. nvplan.io/nvme", self.resource));
        }
        if self.drives == 0 {
            return Err("--drives 0: a campaign needs at least one drive".into());
        }
        Ok(())
    }

    /// `(file name, YAML)`: `campaign.yaml` (the plan's ConfigMap and the Indexed Job),
    /// `merge.yaml` (the Job that merges every index's results), `device-plugin.yaml` (the
    /// SR-IOV device plugin's configuration: NVMe functions on vfio-pci as the resource).
    pub fn manifests(&self) -> Vec<(&'static str, String)> {
        let (plan_file, plan_text) = &self.plan;
        let env = self.device_env();
        let (prefix, resource_name) = self.resource.split_once('/').unwrap_or(("nvplan.io", "nvme"));
        let mut run = format!("exec nvplan run /plan/{plan_file} --target \"vfio:${env}\" --out \"/results/task-$JOB_COMPLETION_INDEX\" --quiet");
        if self.time_scale != 1.0 {
            let _ = write!(run, " --time-scale {}", self.time_scale);
        }
        let mut c = String::new();
        let _ = write!(
            c,
            "# {name}: the plan on {drives} drives, a pod per drive (written by `nvplan kube`).\n\
# The pod of completion index i writes /results/task-i; a failed index fails alone.\n\
apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}-plan\n  namespace: {ns}\ndata:\n  {pf}: |\n",
            name = self.name,
            drives = self.drives,
            ns = self.namespace,
            pf = plan_file
        );
        for line in plan_text.lines() {
            let _ = writeln!(c, "    {line}");
        }
        let _ = write!(
            c,
            "---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  completionMode: Indexed\n  completions: {drives}\n  parallelism: {par}\n  backoffLimitPerIndex: 0\n  maxFailedIndexes: {drives}\n  template:\n    metadata:\n      labels:\n        app.kubernetes.io/name: nvplan\n        nvplan/campaign: {name}\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: nvplan\n          image: {image}\n          command: [\"/bin/sh\", \"-c\"]\n          args: [{run}]\n          resources:\n            requests: {{cpu: \"{cpus}\", memory: 2Gi, {res}: \"1\"}}\n            limits: {{cpu: \"{cpus}\", memory: 2Gi, {res}: \"1\"}}\n          securityContext:\n            capabilities: {{add: [IPC_LOCK]}}\n          volumeMounts:\n            - {{name: plan, mountPath: /plan, readOnly: true}}\n            - {{name: results, mountPath: /results}}\n      volumes:\n        - name: plan\n          configMap: {{name: {name}-plan}}\n        - name: results\n          persistentVolumeClaim: {{claimName: {claim}}}\n",
            name = self.name,
            ns = self.namespace,
            drives = self.drives,
            par = self.parallelism.clamp(1, self.drives.max(1)),
            image = quoted(&self.image),
            run = quoted(&run),
            cpus = self.cpus.max(1),
            res = self.resource,
            claim = self.results_claim,
        );
        let last = self.drives.saturating_sub(1);
        let merge_cmd = format!("exec nvplan report --merge $(seq -f /results/task-%g 0 {last}) --out /results/merged");
        let merge = format!(
            "# {name}: the merged report of the campaign's {drives} indexes (written by `nvplan kube`).\n\
# Apply once the campaign Job has ended (condition Complete, or Failed when an index failed).\n\
apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}-merge\n  namespace: {ns}\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: merge\n          image: {image}\n          command: [\"/bin/sh\", \"-c\"]\n          args: [{cmd}]\n          volumeMounts:\n            - {{name: results, mountPath: /results}}\n      volumes:\n        - name: results\n          persistentVolumeClaim: {{claimName: {claim}}}\n",
            name = self.name,
            drives = self.drives,
            ns = self.namespace,
            image = quoted(&self.image),
            cmd = quoted(&merge_cmd),
            claim = self.results_claim,
        );
        let plugin = format!(
            "# The SR-IOV device plugin's configuration: every function bound to vfio-pci is one\n\
# {res} (add \"vendors\" and \"devices\" to the selectors on hosts that pass other functions\n\
# to VMs); a pod given one finds its PCI address in ${env}.\n\
apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: sriovdp-config\n  namespace: kube-system\ndata:\n  config.json: |\n    {{\"resourceList\": [{{\"resourcePrefix\": \"{prefix}\", \"resourceName\": \"{rname}\", \"deviceType\": \"accelerator\", \"selectors\": {{\"drivers\": [\"vfio-pci\"]}}}}]}}\n",
            res = self.resource,
            env = env,
            prefix = prefix,
            rname = resource_name,
        );
        vec![("campaign.yaml", c), ("merge.yaml", merge), ("device-plugin.yaml", plugin)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_kubernetes_refuses_are_refused_here() {
        assert!(dns_label("qual-2026") && !dns_label("Qual") && !dns_label("-q") && !dns_label("a_b"));
        let c = KubeCampaign {
            name: "Bad".into(),
            namespace: "default".into(),
            plan: ("p.yaml".into(), String::new()),
            drives: 1,
            parallelism: 1,
            image: "i".into(),
            resource: "nvplan.io/nvme".into(),
            results_claim: "r".into(),
            cpus: 1,
            time_scale: 1.0,
        };
        assert!(c.check().unwrap_err().contains("DNS label"));
        assert_eq!(c.device_env(), "PCIDEVICE_NVPLAN_IO_NVME");
    }
}
