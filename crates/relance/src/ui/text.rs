//! The dashboard's words, in English and French. Each entry must give both (the macro
//! takes exactly two texts), so a missing translation does not compile; `{}` marks a
//! value filled in order, and a test checks both languages have as many.

use super::locale::Lang;

macro_rules! catalogue {
    ($($key:ident => $en:literal, $fr:literal;)*) => {
        /// A text of the dashboard.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum T { $($key),* }

        impl T {
            pub const ALL: &'static [T] = &[$(T::$key),*];

            pub fn text(self, lang: Lang) -> &'static str {
                match (self, lang) {
                    $((T::$key, Lang::En) => $en, (T::$key, Lang::Fr) => $fr,)*
                }
            }

            /// The key's name, for the page scripts' table.
            pub fn name(self) -> &'static str {
                match self { $(T::$key => stringify!($key)),* }
            }
        }
    };
}

/// Fills each `{}` with the next value; extra `{}` stay as they are.
pub fn fill(template: &str, args: &[&dyn std::fmt::Display]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    let mut args = args.iter();
    while let Some(i) = rest.find("{}") {
        out.push_str(&rest[..i]);
        match args.next() {
            Some(a) => out.push_str(&a.to_string()),
            None => out.push_str("{}"),
        }
        rest = &rest[i + 2..];
    }
    out.push_str(rest);
    out
}

catalogue! {
    // The shell.
    Overview => "Overview", "Vue d’ensemble";
    Contacts => "Contacts", "Contacts";
    Rules => "Rules", "Règles";
    Actions => "Actions", "Actions";
    UsersAndKeys => "Users & keys", "Utilisateurs et clés";
    Audit => "Audit", "Journal";
    SkipToContent => "Skip to content", "Aller au contenu";
    MainNav => "Main", "Principal";
    SignedInAs => "Signed in as", "Connecté en tant que";
    SignOut => "Sign out", "Se déconnecter";
    Language => "Language", "Langue";
    TimesIn => "Times in {}", "Heures : {}";
    SomethingWentWrong => "Something went wrong", "Un problème est survenu";
    // Sign-in.
    SignIn => "Sign in", "Connexion";
    Name => "Name", "Nom";
    Password => "Password", "Mot de passe";
    NoTokenHint => "No admin token is set on this server (loopback only): leave both fields empty.",
        "Aucun jeton d’administration n’est défini sur ce serveur (accès local seulement) : laissez les deux champs vides.";
    BootstrapHint => "Before any user exists: leave the name empty and give the admin token as the password.",
        "Tant qu’aucun utilisateur n’existe : laissez le nom vide et donnez le jeton d’administration comme mot de passe.";
    WrongPassword => "Wrong name or password.", "Nom ou mot de passe incorrect.";
    TooManySignIns => "Too many failed sign-ins: try again in {} s.", "Trop d’échecs de connexion : réessayez dans {} s.";
    DatabaseUnavailable => "The database is unavailable; try again shortly.",
        "La base de données est indisponible ; réessayez dans un instant.";
    DatabaseBusy => "The database is busy or unavailable; try again shortly.",
        "La base de données est occupée ou indisponible ; réessayez dans un instant.";
    SessionEnded => "Your session has ended: sign in again.", "Votre session a pris fin : reconnectez-vous.";
    StaleForm => "This form is stale or came from another site: reload the page.",
        "Ce formulaire est périmé ou vient d’un autre site : rechargez la page.";
    SignOutFailed => "Signing out failed; try again.", "La déconnexion a échoué ; réessayez.";
    NeedsRole => "This needs the {} role; you are signed in as {} ({}). Ask an admin.",
        "Il faut le rôle {} ; vous êtes connecté en tant que {} ({}). Demandez à un administrateur.";
    UndeclaredPage => "This page has no declared role; it is refused.", "Cette page n’a pas de rôle déclaré ; elle est refusée.";
    NotFound => "No {}.", "Introuvable : {}.";
    // Times.
    JustNow => "just now", "à l’instant";
    MinutesAgo => "{} min ago", "il y a {} min";
    HoursAgo => "{} h ago", "il y a {} h";
    Never => "never", "jamais";
    // The overview.
    OvFiguresAsOf => "Figures as of", "Chiffres au";
    OvFeedIsLive => "; the feed below is live.", "; le fil ci-dessous est en direct.";
    OvKeyFigures => "Key figures", "Chiffres clés";
    OvContactsLabel => "contacts", "contacts";
    OvEvents24h => "events in 24 h", "événements en 24 h";
    OvActionsWaiting => "actions waiting", "actions en attente";
    OvFailedOrDead => "failed or dead actions", "actions en échec ou abandonnées";
    OvEventsPerHour => "Events per hour, last 7 days, by trigger", "Événements par heure, 7 derniers jours, par déclencheur";
    OvEventsChartLabel => "Events per hour by trigger over the last 7 days; the table below has the totals", "Événements par heure et par déclencheur sur 7 jours ; le tableau ci-dessous donne les totaux";
    OvEventsByTrigger => "Events by trigger", "Événements par déclencheur";
    OvTrigger => "Trigger", "Déclencheur";
    Ov7Days => "7 days", "7 jours";
    OvNoTrigger => "no trigger (logged only)", "aucun déclencheur (journalisé seulement)";
    OvNoEvents => "No events in the last 7 days.", "Aucun événement ces 7 derniers jours.";
    OvLiveFeed => "Live feed", "Fil en direct";
    OvConnecting => "Connecting…", "Connexion…";
    OvRulesFired => "Rules that fired most", "Règles les plus déclenchées";
    OvRule => "Rule", "Règle";
    OvNoRuleFired => "No rule fired in the last 7 days.", "Aucune règle déclenchée ces 7 derniers jours.";
    OvScoreDistribution => "Score distribution", "Répartition des scores";
    OvScoreChartLabel => "Number of contacts per score band; the table has the figures", "Nombre de contacts par tranche de score ; le tableau donne les chiffres";
    OvAsTable => "As a table", "En tableau";
    OvScore => "Score", "Score";
    OvPerSegment => "Contacts per segment", "Contacts par segment";
    OvSegment => "Segment", "Segment";
    OvShare => "Share", "Part";
    OvActionsByState => "Actions by type and state", "Actions par type et par état";
    OvAction => "Action", "Action";
    OvNoActions => "No actions yet.", "Aucune action pour l’instant.";
    OvAttention => "Needing attention", "À surveiller";
    OvRefusedOnce => "refused {} time in the last hour:", "a refusé {} fois dans la dernière heure :";
    OvRefusalsHint => "Counted on this instance; check the token set in the sender against RELANCE_WEBHOOK_TOKEN / RELANCE_ADMIN_TOKEN.", "Comptés sur cette instance ; comparez le jeton réglé chez l’expéditeur avec RELANCE_WEBHOOK_TOKEN / RELANCE_ADMIN_TOKEN.";
    OvNoTrouble => "No failed or dead actions.", "Aucune action en échec ou abandonnée.";
    OvHeld => "Messages held back by contact pressure", "Messages retenus par la pression commerciale";
    OvOutcome => "Outcome", "Issue";
    OvUnrecognised => "Unrecognised event names in the last 7 days", "Noms d’événements inconnus ces 7 derniers jours";
    OvUnrecognisedHint => "Stored, but no rule can use them yet: a name Brevo started sending, or a webhook ticked by mistake.", "Enregistrés, mais aucune règle ne peut encore s’en servir : un nom que Brevo envoie depuis peu, ou un webhook coché par erreur.";
    OvEventName => "Event name", "Nom de l’événement";
    OvRejected => "Deliveries that could not be stored, last 7 days", "Livraisons qui n’ont pas pu être enregistrées, 7 derniers jours";
    OvLastReceived => "Last received", "Dernière réception";
    OvRefusedTimes => "refused {} times in the last hour:", "a refusé {} fois dans la dernière heure :";
    OvReason => "Reason", "Raison";
    OvEvents => "Events", "Événements";
    OvSource => "Source", "Source";
    OvProblem => "Problem", "Problème";
    OvTimes => "Times", "Fois";
    OvPayload => "Payload", "Contenu";
    // The page scripts (names start with Js: only those are sent to the browser).
    JsLive => "Live: new events appear here.", "En direct : les nouveaux événements s’affichent ici.";
    JsReconnecting => "Reconnecting…", "Reconnexion…";
    JsAnonymous => "(anonymous)", "(anonyme)";
    JsContacts => "contacts", "contacts";
    JsScore => "score", "score";
    // Job and run states.
    StateDone => "done", "fait";
    StatePending => "pending", "en attente";
    StateRunning => "running", "en cours";
    StateFailed => "failed", "en échec";
    StateDead => "dead", "abandonné";
    StateCancelled => "cancelled", "annulé";
    StateSuppressed => "suppressed", "supprimé";
    StateSkipped => "skipped", "sauté";
    StateHeld => "held", "retenu";
    StateActive => "active", "actif";
    StateGoalReached => "goal reached", "objectif atteint";
    StateCompleted => "completed", "terminé";
}

/// A state's name in the reader's language (unknown states as they are).
pub fn state(state: &str, lang: Lang) -> String {
    let key = match state {
        "done" => T::StateDone,
        "pending" => T::StatePending,
        "running" => T::StateRunning,
        "failed" => T::StateFailed,
        "dead" => T::StateDead,
        "cancelled" => T::StateCancelled,
        "suppressed" => T::StateSuppressed,
        "skipped" => T::StateSkipped,
        "held" => T::StateHeld,
        "active" => T::StateActive,
        "goal_reached" => T::StateGoalReached,
        "completed" => T::StateCompleted,
        other => return other.to_owned(),
    };
    key.text(lang).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_exists_in_both_languages_with_the_same_blanks() {
        for key in T::ALL {
            let (en, fr) = (key.text(Lang::En), key.text(Lang::Fr));
            assert!(!en.trim().is_empty() && !fr.trim().is_empty(), "{key:?} is blank");
            assert_eq!(en.matches("{}").count(), fr.matches("{}").count(), "{key:?}: {en:?} / {fr:?}");
        }
    }

    #[test]
    fn blanks_are_filled_in_order() {
        assert_eq!(fill("{} of {}", &[&1, &"two"]), "1 of two");
        assert_eq!(fill("{} and {}", &[&1]), "1 and {}");
    }
}
