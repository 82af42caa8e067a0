//! The command line an update's script receives, exactly as Azure Device Update builds
//! it for `microsoft/script:1` (script_handler.cpp, `PrepareScriptArguments`) and for
//! `microsoft/swupdate:2` (swupdate_handler_v2.cpp, `PrepareCommandArguments`):
//!
//! 1. the action: `--action-install` (apiVersion 1.0, the default) or `--action install`
//!    (1.1); none for any other apiVersion;
//! 2. the handler's own arguments ([`Inputs::leading`]): none for the script handler;
//!    `--swu-file <path>` and the configured key/value pairs for swupdate:2;
//! 3. the step's `arguments` split on single spaces (empty tokens dropped, no quoting),
//!    with the component placeholders (`--component-id-val`, `--component-name-val`,
//!    `--component-manufacturer-val`, `--component-model-val`, `--component-version-val`,
//!    `--component-group-val`, `--component-prop-val <property>`) replaced from the
//!    selected component, `n/a` when there is none; swupdate:2 also takes
//!    `${du_component_id}` … `${du_component_group}` and `${du_component_prop} <property>`
//!    ([`Dialect`]);
//! 4. `--work-folder <dir>`, `--result-file <file>` (the script handler's
//!    `<dir>/action_<action>_aduc_result.json`, [`result_file_path`]), and
//!    `--installed-criteria <value>` when the step has criteria that are not empty.
//!
//! Paths are sandbox paths here; they are marked so the host maps them to the files the
//! script can open.

use handrail_sdk::{Action, Component};

/// Written in place of a component placeholder when there is no component (or no such
/// property).
pub const NOT_AVAILABLE: &str = "n/a";

/// How the action is passed to the script (`handlerProperties.apiVersion`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiVersion {
    /// "1.0" (the default): `--action-install`.
    V1_0,
    /// "1.1": `--action install`.
    V1_1,
    /// Any other value: ADU passes no action at all.
    Other(String),
}

impl ApiVersion {
    /// Reads `apiVersion`; absent means 1.0.
    pub fn parse(value: Option<&str>) -> ApiVersion {
        match value {
            None | Some("1.0") => ApiVersion::V1_0,
            Some("1.1") => ApiVersion::V1_1,
            Some(other) => ApiVersion::Other(other.to_owned()),
        }
    }
}

/// One argument of the script's command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptArg {
    /// Passed as is.
    Literal(String),
    /// A path inside the sandbox, mapped by the host to the real path.
    Path(String),
}

impl ScriptArg {
    fn lit(s: impl Into<String>) -> Self {
        ScriptArg::Literal(s.into())
    }
}

/// The result file ADU's script handler names for `action`, inside `work_folder`.
///
/// ```
/// use handrail_adu_script::arguments::result_file_path;
/// use handrail_sdk::Action;
/// assert_eq!(result_file_path("/work", Action::Install), "/work/action_install_aduc_result.json");
/// ```
pub fn result_file_path(work_folder: &str, action: Action) -> String {
    format!(
        "{}/action_{}_aduc_result.json",
        work_folder.trim_end_matches('/'),
        action.as_str()
    )
}

/// Which handler's placeholders the step's `arguments` may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `microsoft/script:1`: the `--component-*-val` placeholders; a missing property of
    /// `--component-prop-val <property>` is `n/a`.
    Script,
    /// `microsoft/swupdate:2`: those and their `${du_component_*}` spellings; a missing
    /// property of `--component-prop-val <property>` (or `${du_component_prop}`) is left
    /// out, as ADU's swupdate handler leaves it out.
    SwupdateV2,
}

/// Everything the command line is built from.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// Whose placeholders `arguments` uses.
    pub dialect: Dialect,
    /// The handler's own arguments, right after the action.
    pub leading: Vec<ScriptArg>,
    /// The step's `arguments` property.
    pub arguments: Option<&'a str>,
    /// The selected component, if any.
    pub component: Option<&'a Component>,
    /// The action being run.
    pub action: Action,
    /// How to pass the action.
    pub api_version: ApiVersion,
    /// The work folder (sandbox path).
    pub work_folder: &'a str,
    /// The file the script writes its result to (sandbox path).
    pub result_file: &'a str,
    /// The step's installed criteria.
    pub installed_criteria: Option<&'a str>,
}

/// The script's arguments (without the script itself), in ADU's order.
pub fn script_arguments(inputs: &Inputs<'_>) -> Vec<ScriptArg> {
    let mut args = Vec::new();
    match &inputs.api_version {
        ApiVersion::V1_0 => args.push(ScriptArg::lit(format!("--action-{}", inputs.action))),
        ApiVersion::V1_1 => {
            args.push(ScriptArg::lit("--action"));
            args.push(ScriptArg::lit(inputs.action.as_str()));
        }
        ApiVersion::Other(_) => {}
    }
    args.extend(inputs.leading.iter().cloned());
    let swupdate = inputs.dialect == Dialect::SwupdateV2;
    let mut tokens = inputs
        .arguments
        .unwrap_or("")
        .split(' ')
        .filter(|t| !t.is_empty());
    while let Some(token) = tokens.next() {
        let field = match token {
            "--component-id-val" => Some("id"),
            "--component-name-val" => Some("name"),
            "--component-manufacturer-val" => Some("manufacturer"),
            "--component-model-val" => Some("model"),
            "--component-version-val" => Some("version"),
            "--component-group-val" => Some("group"),
            "--component-prop-val" => Some("prop"),
            "${du_component_id}" if swupdate => Some("id"),
            "${du_component_name}" if swupdate => Some("name"),
            "${du_component_manufacturer}" if swupdate => Some("manufacturer"),
            "${du_component_model}" if swupdate => Some("model"),
            "${du_component_version}" if swupdate => Some("version"),
            "${du_component_group}" if swupdate => Some("group"),
            "${du_component_prop}" if swupdate => Some("prop"),
            _ => None,
        };
        let value = match field {
            None => Some(token.to_owned()),
            // The property's name follows the placeholder; both become the value.
            Some("prop") => match tokens.next() {
                Some(name) => {
                    let value = inputs.component.and_then(|c| c.property(name));
                    match value.filter(|v| !v.is_empty()) {
                        Some(value) => Some(value),
                        None if swupdate => None,
                        None => Some(NOT_AVAILABLE.to_owned()),
                    }
                }
                None => Some(NOT_AVAILABLE.to_owned()),
            },
            Some(field) => Some(component_field(inputs.component, field)),
        };
        args.extend(value.map(ScriptArg::Literal));
    }
    args.push(ScriptArg::lit("--work-folder"));
    args.push(ScriptArg::Path(inputs.work_folder.to_owned()));
    args.push(ScriptArg::lit("--result-file"));
    args.push(ScriptArg::Path(inputs.result_file.to_owned()));
    if let Some(criteria) = inputs.installed_criteria.filter(|c| !c.is_empty()) {
        args.push(ScriptArg::lit("--installed-criteria"));
        args.push(ScriptArg::lit(criteria));
    }
    args
}

/// The component's `field`, `n/a` when there is no component or the field is empty.
fn component_field(component: Option<&Component>, field: &str) -> String {
    let value = component.map(|c| match field {
        "id" => c.id.clone(),
        "name" => c.name.clone(),
        "manufacturer" => c.manufacturer.clone(),
        "model" => c.model.clone(),
        "group" => c.group.clone(),
        _ => c.version.clone().unwrap_or_default(),
    });
    value
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| NOT_AVAILABLE.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn camera() -> Component {
        let mut c = Component {
            id: "cam-1".into(),
            name: "front".into(),
            group: "cameras".into(),
            manufacturer: "contoso".into(),
            model: "vc-2".into(),
            version: Some("1.1".into()),
            ..Component::default()
        };
        c.properties.insert("path".into(), "/dev/video0".into());
        c
    }

    fn rendered(args: &[ScriptArg]) -> Vec<String> {
        args.iter()
            .map(|a| match a {
                ScriptArg::Literal(s) => s.clone(),
                ScriptArg::Path(p) => format!("<{p}>"),
            })
            .collect()
    }

    fn inputs<'a>(arguments: &'a str, component: Option<&'a Component>) -> Inputs<'a> {
        Inputs {
            dialect: Dialect::Script,
            leading: Vec::new(),
            result_file: "/work/action_install_aduc_result.json",
            arguments: Some(arguments),
            component,
            action: Action::Install,
            api_version: ApiVersion::V1_0,
            work_folder: "/work",
            installed_criteria: Some("v1.2"),
        }
    }

    #[test]
    fn placeholders_are_replaced_from_the_component_in_adu_order() {
        let c = camera();
        let args = script_arguments(&inputs(
            "--pre  --component-name --component-name-val --component-group --component-group-val --component-prop path --component-prop-val path --id --component-id-val --m --component-manufacturer-val --component-model-val --component-version-val",
            Some(&c),
        ));
        assert_eq!(
            rendered(&args),
            [
                "--action-install",
                "--pre",
                "--component-name",
                "front",
                "--component-group",
                "cameras",
                "--component-prop",
                "path",
                "/dev/video0",
                "--id",
                "cam-1",
                "--m",
                "contoso",
                "vc-2",
                "1.1",
                "--work-folder",
                "</work>",
                "--result-file",
                "</work/action_install_aduc_result.json>",
                "--installed-criteria",
                "v1.2",
            ]
        );
    }

    #[test]
    fn placeholders_without_a_component_are_not_available() {
        let args = script_arguments(&Inputs {
            installed_criteria: None,
            ..inputs(
                "--component-name-val --component-prop-val path --component-prop-val",
                None,
            )
        });
        assert_eq!(
            rendered(&args)[1..4],
            [NOT_AVAILABLE, NOT_AVAILABLE, NOT_AVAILABLE]
        );
        assert!(!rendered(&args).contains(&"--installed-criteria".to_owned()));
        let c = camera();
        let args = script_arguments(&inputs("--component-prop-val nope", Some(&c)));
        assert_eq!(rendered(&args)[1], NOT_AVAILABLE);
        // Empty criteria are left out, not passed as "".
        let args = script_arguments(&Inputs {
            installed_criteria: Some(""),
            ..inputs("", None)
        });
        assert!(!rendered(&args).contains(&"--installed-criteria".to_owned()));
    }

    #[test]
    fn api_1_1_passes_the_action_as_a_value() {
        let args = script_arguments(&Inputs {
            api_version: ApiVersion::V1_1,
            action: Action::IsInstalled,
            ..inputs("", None)
        });
        assert_eq!(
            rendered(&args)[..4],
            ["--action", "is-installed", "--work-folder", "</work>"]
        );
        // Another apiVersion: ADU passes no action.
        let args = script_arguments(&Inputs {
            api_version: ApiVersion::parse(Some("2.0")),
            ..inputs("--x", None)
        });
        assert_eq!(rendered(&args)[..2], ["--x", "--work-folder"]);
    }

    #[test]
    fn arguments_split_on_single_spaces_only() {
        // ADU splits on ' ' alone: a tab stays inside its token.
        let args = script_arguments(&inputs("a  b\tc", None));
        assert_eq!(rendered(&args)[1..3], ["a", "b\tc"]);
    }

    #[test]
    fn swupdate_v2_takes_its_own_placeholders_and_leading_arguments() {
        let c = camera();
        let args = script_arguments(&Inputs {
            dialect: Dialect::SwupdateV2,
            leading: vec![
                ScriptArg::lit("--swu-file"),
                ScriptArg::Path("/work/fw.swu".into()),
            ],
            result_file: "/work/result.json",
            ..inputs(
                "--id ${du_component_id} ${du_component_name} --component-group-val ${du_component_prop} path ${du_component_prop} nope --component-prop-val nope --last ${du_component_version}",
                Some(&c),
            )
        });
        assert_eq!(
            rendered(&args),
            [
                "--action-install",
                "--swu-file",
                "</work/fw.swu>",
                "--id",
                "cam-1",
                "front",
                "cameras",
                "/dev/video0",
                // A property the component lacks is left out, as ADU's swupdate:2 does.
                "--last",
                "1.1",
                "--work-folder",
                "</work>",
                "--result-file",
                "</work/result.json>",
                "--installed-criteria",
                "v1.2",
            ]
        );
        // Without a component every placeholder is `n/a`, and a trailing prop too.
        let args = script_arguments(&Inputs {
            dialect: Dialect::SwupdateV2,
            ..inputs("${du_component_model} ${du_component_prop}", None)
        });
        assert_eq!(rendered(&args)[1..3], [NOT_AVAILABLE, NOT_AVAILABLE]);
        // The script handler passes the `${…}` spellings as they are.
        let args = script_arguments(&inputs("${du_component_id}", Some(&c)));
        assert_eq!(rendered(&args)[1], "${du_component_id}");
    }
}
