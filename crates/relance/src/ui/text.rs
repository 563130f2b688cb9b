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
    OvRouteBrevo => "Brevo webhook (/webhook/email)", "Le webhook Brevo (/webhook/email)";
    OvRouteBehavior => "Behaviour webhook (/webhook/behavior)", "Le webhook de comportement (/webhook/behavior)";
    OvRouteMetrics => "Metrics (/metrics)", "Les métriques (/metrics)";
    OvRouteApi => "Admin API (/api)", "L’API d’administration (/api)";
    OvWhyMissing => "no Authorization header", "pas d’en-tête Authorization";
    OvWhyMalformed => "Authorization is not “Bearer <token>”", "Authorization n’est pas « Bearer <jeton> »";
    OvWhyWebhookOnAdmin => "the webhook token was sent to the admin API", "le jeton de webhook a été envoyé à l’API d’administration";
    OvWhyWrong => "wrong token", "mauvais jeton";
    OvHeldHint => "Caps, quiet hours and rule budgets ([pressure], max_per_day): a deferred message waits and is checked again; a skipped one never goes.", "Plafonds, heures calmes et budgets des règles ([pressure], max_per_day) : un message reporté attend et est revérifié ; un message sauté ne part jamais.";
    OvHeldSkipped => "skipped actions", "actions sautées";
    OvHeldDeferred => "deferred actions", "actions reportées";
    OvNoSegments => "No contact yet.", "Aucun contact pour l’instant.";
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
    // The first run.
    FrTitle => "Getting started", "Premiers pas";
    FrIntro => "No event has arrived yet. Connect Brevo and the website, then check with a test event.", "Aucun événement n’est encore arrivé. Branchez Brevo et le site, puis vérifiez avec un événement de test.";
    FrBrevo => "Brevo.", "Brevo.";
    FrBrevoWhere => "In Brevo, Transactional → Settings → Webhooks (and Contacts → Settings → Webhooks for campaigns), add a webhook:", "Dans Brevo, Transactionnel → Paramètres → Webhooks (et Contacts → Paramètres → Webhooks pour les campagnes), ajoutez un webhook :";
    FrAuth => "Authentication", "Authentification";
    FrAuthToken => "Bearer token: the value of RELANCE_WEBHOOK_TOKEN (webhook_token in relance.toml).", "Jeton « Bearer » : la valeur de RELANCE_WEBHOOK_TOKEN (webhook_token dans relance.toml).";
    FrAuthNone => "No webhook token is set on this server: anyone who reaches it may post events. Set RELANCE_WEBHOOK_TOKEN (webhook_token in relance.toml) before going live.", "Aucun jeton de webhook n’est défini sur ce serveur : quiconque l’atteint peut poster des événements. Définissez RELANCE_WEBHOOK_TOKEN (webhook_token dans relance.toml) avant la mise en service.";
    FrAuthKey => "An ingest key from Users & keys works too.", "Une clé « ingest » de la page Utilisateurs et clés convient aussi.";
    FrEvents => "Events to tick", "Événements à cocher";
    FrWebsite => "The website.", "Le site.";
    FrWebsiteHow => "It posts visits, forms and purchases to /webhook/behavior, for example:", "Il poste visites, formulaires et achats sur /webhook/behavior, par exemple :";
    FrTry => "Try it.", "Essayez.";
    FrTryHow => "A test event goes through the same path as a real one and appears in the live feed, marked test; it fires no rule and is left out of the figures and charts.", "Un événement de test suit le même chemin qu’un vrai et apparaît dans le fil en direct, marqué test ; il ne déclenche aucune règle et reste hors des chiffres et des graphiques.";
    FrSendTest => "Send a test event", "Envoyer un événement de test";
    FrDeleteTests => "Delete the test events", "Supprimer les événements de test";
    FrDeleteConfirm => "Delete every test event?", "Supprimer tous les événements de test ?";
    FrHides => "This panel goes away with the first real event.", "Ce panneau disparaît avec le premier vrai événement.";
    FeedTest => "test", "test";
    // Integrations.
    Integrations => "Integrations", "Intégrations";
    InApiKey => "API key", "Clé d’API";
    InAddress => "Address", "Adresse";
    InSender => "Sender", "Expéditeur";
    InSenderNone => "none: emails use their Brevo template's sender", "aucun : les e-mails prennent l’expéditeur de leur modèle Brevo";
    InSmsSender => "SMS sender", "Expéditeur SMS";
    InTemplates => "Templates", "Modèles";
    InTemplatesNone => "none mapped: emails use the built-in templates", "aucun associé : les e-mails utilisent les modèles intégrés";
    InTestBrevo => "Test: read the Brevo account", "Tester : lire le compte Brevo";
    InFlowUrl => "Flow URL", "URL du flux";
    InTestPing => "Test: send a signed ping", "Tester : envoyer un ping signé";
    InWebhooks => "Outgoing webhooks", "Webhooks sortants";
    InSigning => "Signing secret", "Secret de signature";
    InSigningOk => "set and well formed", "défini et bien formé";
    InSigningBad => "set but unusable: {}", "défini mais inutilisable : {}";
    InSigningNone => "not set: webhooks are sent unsigned", "non défini : les webhooks partent sans signature";
    InRuleUrls => "URLs in the rules", "URL des règles";
    InRuleUrlsNone => "no rule calls a webhook", "aucune règle n’appelle de webhook";
    InPingDoc => "The ping payload and how to check its signature:", "Le contenu du ping et la vérification de sa signature :";
    InTokens => "Tokens", "Jetons";
    InTokensHint => "Values are never shown. API keys are on Users & keys.", "Les valeurs ne sont jamais affichées. Les clés d’API sont sur Utilisateurs et clés.";
    InDatabase => "Database", "Base de données";
    InBackend => "Backend", "Moteur";
    InSize => "Size", "Taille";
    InSchema => "Schema version", "Version du schéma";
    InInstance => "This instance", "Cette instance";
    InVersion => "Version", "Version";
    InUptime => "Up for", "En marche depuis";
    InUptimeDays => "{} d {} h", "{} j {} h";
    InSet => "set", "défini";
    InNotSet => "not set", "non défini";
    InLastOk => "Last successful call", "Dernier appel réussi";
    InLastFailed => "Last failed call", "Dernier appel en échec";
    InWebhookUrl => "Receiver URL", "URL du destinataire";
    InWebhookUrlNeeded => "Give the receiver's URL to test.", "Indiquez l’URL du destinataire à tester.";
    InTestOk => "Answered", "Réponse reçue";
    InTestFailed => "Failed", "Échec";
    // CSV import.
    ImTitle => "Import contacts (CSV)", "Importer des contacts (CSV)";
    ImHint => "From the CRM or a spreadsheet (UTF-8 or Excel's Windows-1252; comma, semicolon or tab). Columns, any order:", "Depuis le CRM ou un tableur (UTF-8 ou Windows-1252 d’Excel ; virgule, point-virgule ou tabulation). Colonnes, dans n’importe quel ordre :";
    ImFile => "File", "Fichier";
    ImCheck => "Check the file", "Vérifier le fichier";
    ImTooBig => "The file is over {} KiB: import it with POST /api/contacts/import.", "Le fichier dépasse {} Kio : importez-le avec POST /api/contacts/import.";
    ImNoFile => "Choose a CSV file.", "Choisissez un fichier CSV.";
    ImChecked => "File checked: nothing imported yet", "Fichier vérifié : rien n’est encore importé";
    ImRead => "Read as {}, separator “{}”. Ready to import: {}; rejected: {}.", "Lu en {}, séparateur « {} ». Prêtes à importer : {} ; rejetées : {}.";
    ImPreview => "The first {} rows", "Les {} premières lignes";
    ImLine => "Line", "Ligne";
    ImSkipBad => "Import the good rows and leave out the {} rejected ones", "Importer les bonnes lignes et laisser de côté les {} rejetées";
    ImConfirm => "Import the ready rows ({})", "Importer les lignes prêtes ({})";
    ImBack => "Back to the contacts", "Retour aux contacts";
    ImDone => "Imported. Created: {}; updated: {}; left out: {}.", "Import fait. Créés : {} ; mis à jour : {} ; laissés de côté : {}.";
    ImNothing => "Nothing was imported: fix the lines below and try again.", "Rien n’a été importé : corrigez les lignes ci-dessous et réessayez.";
    // The page scripts (names start with Js: only those are sent to the browser).
    JsLive => "Live: new events appear here.", "En direct : les nouveaux événements s’affichent ici.";
    JsReconnecting => "Reconnecting…", "Reconnexion…";
    JsAnonymous => "(anonymous)", "(anonyme)";
    JsContacts => "contacts", "contacts";
    JsScore => "score", "score";
    JsTest => "test", "test";
    JsCheckFailed => "Could not check the rules: {}", "Impossible de vérifier les règles : {}";
    JsLineAt => "line {}: ", "ligne {} : ";
    JsRuleAt => "rule {}, ", "règle {}, ";
    JsValidSame => "Valid: this is the set in force.", "Valide : c’est le jeu en vigueur.";
    JsValidRules => "Valid: {} rules. Backtest it before activating.", "Valide : {} règles. Testez-le avant de l’activer.";
    JsProblems => "{} problem(s); nothing can be activated until they are fixed.", "{} problème(s) ; rien ne peut être activé avant leur correction.";
    JsReplaying => "Replaying the stored events…", "Rejeu des événements enregistrés…";
    JsBacktestTitle => "Backtest: {} events, {} contacts, {} s", "Test : {} événements, {} contacts, {} s";
    JsDiffContacts => "{} contacts ending differently", "{} contacts finissant autrement";
    JsDiffScore => "{} with another score", "{} avec un autre score";
    JsDiffSegment => "{} with another segment", "{} dans un autre segment";
    JsDiffTags => "{} with other tags", "{} avec d’autres étiquettes";
    JsDiffEmailsGone => "{} emails no longer sent", "{} e-mails qui ne partiraient plus";
    JsDiffEmailsNew => "{} emails newly sent", "{} e-mails qui partiraient en plus";
    JsRule => "Rule", "Règle";
    JsAction => "Action", "Action";
    JsColLive => "Live", "Actuel";
    JsColCandidate => "Candidate", "Candidat";
    JsActionsPerRule => "Actions per rule", "Actions par règle";
    JsRunsEnteredLive => "Runs entered (live)", "Séquences entrées (actuel)";
    JsRunsEnteredCandidate => "Runs entered (candidate)", "Séquences entrées (candidat)";
    JsGoalsLive => "Goals reached (live)", "Objectifs atteints (actuel)";
    JsGoalsCandidate => "Goals reached (candidate)", "Objectifs atteints (candidat)";
    JsStepsSkipped => "Steps skipped (candidate)", "Étapes sautées (candidat)";
    JsRuns => "Follow-up runs", "Séquences de relance";
    JsPressure => "Contact pressure", "Pression commerciale";
    JsDeferred => "messages deferred", "messages reportés";
    JsSkipped => "messages skipped", "messages sautés";
    JsPressureTitle => "What caps, quiet hours and budgets would have held back", "Ce que plafonds, heures calmes et budgets auraient retenu";
    JsContactNo => "Contact #", "Contact n°";
    JsLiveScore => "Live score", "Score actuel";
    JsCandidateScore => "Candidate score", "Score candidat";
    JsLiveTags => "Live tags", "Étiquettes actuelles";
    JsCandidateTags => "Candidate tags", "Étiquettes candidates";
    JsExamples => "Examples of contacts ending differently", "Exemples de contacts finissant autrement";
    JsBacktestFailed => "Backtest failed: {}", "Le test a échoué : {}";
    JsActivateConfirm => "Activate these rules? They become a new version, in force at once.", "Activer ces règles ? Elles deviennent une nouvelle version, en vigueur immédiatement.";
    JsActivated => "Version {} is in force.", "La version {} est en vigueur.";
    JsRunsCancelled => " {} run(s) of removed rules cancelled.", " {} séquence(s) de règles retirées annulée(s).";
    JsActivationFailed => "Activation failed: {}", "L’activation a échoué : {}";
    // Triggers and actions.
    TrEmailOpened => "email opened", "e-mail ouvert";
    TrEmailClicked => "link clicked", "lien cliqué";
    TrEmailBounce => "email bounced", "e-mail rejeté";
    TrPageVisit => "page visited", "page visitée";
    TrPurchase => "purchase", "achat";
    TrFormSubmit => "form sent", "formulaire envoyé";
    TrTimeBased => "on a schedule", "selon un calendrier";
    TrUnsubscribe => "unsubscribed", "désinscription";
    TrLeadScoreHigh => "score crosses its threshold", "le score franchit son seuil";
    AcSendEmail => "send an email", "envoyer un e-mail";
    AcUpdateScore => "change the score", "modifier le score";
    AcAddTag => "add the tag", "ajouter l’étiquette";
    AcCreateTask => "create the task", "créer la tâche";
    AcScheduleCall => "schedule a call", "planifier un appel";
    AcPauseCampaign => "pause the campaigns", "suspendre les campagnes";
    AcSendSms => "send an SMS", "envoyer un SMS";
    AcTriggerWebhook => "call the webhook", "appeler le webhook";
    AcRemoveTag => "remove the tag", "retirer l’étiquette";
    AcSetSegment => "move to segment", "passer dans le segment";
    AcEmailTemplate => "send the email {}", "envoyer l’e-mail {}";
    AcEmailTemplateMapped => "send the email {} (Brevo template {})", "envoyer l’e-mail {} (modèle Brevo {})";
    AcScorePlus => "add {} points to the score", "ajouter {} points au score";
    AcScoreMinus => "take {} points off the score", "retirer {} points au score";
    AcNamedScorePlus => "add {} points to the score {}", "ajouter {} points au score {}";
    AcNamedScoreMinus => "take {} points off the score {}", "retirer {} points au score {}";
    AcTransactional => "transactional: passes caps and quiet hours", "transactionnel : passe outre plafonds et heures calmes";
    AcSkippedIf => "skipped if {} happened meanwhile", "sautée si entre-temps : {}";
    DlAtOnce => "at once", "immédiatement";
    DlAfter => "after {}", "après {}";
    DlDay => "{} day", "{} jour";
    DlDays => "{} days", "{} jours";
    CoOr => "or", "ou";
    CoAnd => "and", "et";
    CoAlways => "none: always", "aucune : toujours";
    CoSegment => "segment {}", "segment {}";
    CoAmountOver => "amount over {}", "montant supérieur à {}";
    CoAmountAtMost => "amount at most {}", "montant d’au plus {}";
    CoLeadScore => "lead score", "score";
    CoScoreAtLeast => "{} at least {}", "{} d’au moins {}";
    CoScoreAtMost => "{} at most {}", "{} d’au plus {}";
    CoScoreBetween => "{} from {} to {}", "{} de {} à {}";
    CoTagsAny => "tag {}", "étiquette {}";
    CoTagsAll => "tags {}", "étiquettes {}";
    CoTagsNone => "no tag {}", "aucune étiquette {}";
    CoHardBounce => "hard bounce", "rejet définitif (hard bounce)";
    CoSoftBounce => "soft bounce", "rejet temporaire (soft bounce)";
    CoDaysSincePurchase => "no purchase for {} days", "aucun achat depuis {} jours";
    CoDaysSinceActivity => "no activity for {} days", "aucune activité depuis {} jours";
    CoExpression => "expression: {}", "expression : {}";
    // Shared words.
    Any => "Any", "Tous";
    Filter => "Filter", "Filtrer";
    Clear => "Clear", "Effacer";
    None_ => "none", "aucun";
    State => "State", "État";
    Contact => "Contact", "Contact";
    Rule => "Rule", "Règle";
    Created => "Created", "Créé";
    Updated => "Updated", "Mis à jour";
    Role => "Role", "Rôle";
    By => "by", "par";
    Cancel => "Cancel", "Annuler";
    CancelThis => "Cancel this action?", "Annuler cette action ?";
    RetryNow => "Retry now", "Relancer maintenant";
    Controls => "Controls", "Commandes";
    // Contacts.
    CtSearch => "Email or client code", "E-mail ou code client";
    CtStartsWith => "starts with…", "commence par…";
    CtSegment => "Segment", "Segment";
    CtTag => "Tag", "Étiquette";
    CtScoreFrom => "Score from", "Score de";
    CtScoreTo => "to", "à";
    CtClientCode => "Client code", "Code client";
    CtScore => "Score", "Score";
    CtTags => "Tags", "Étiquettes";
    CtEmailStatus => "Email status", "Statut e-mail";
    CtNoMatch => "No contact matches these filters.", "Aucun contact ne correspond à ces filtres.";
    CtNoContacts => "No contact yet: they appear with their first event, an import or an API call.", "Aucun contact pour l’instant : ils apparaissent avec leur premier événement, un import ou un appel d’API.";
    CtFirstPage => "« First page", "« Première page";
    CtNextPage => "Next page »", "Page suivante »";
    CtPages => "Pages", "Pages";
    CtSuppressed => "suppressed: {}", "bloqué : {}";
    CtMailable => "mailable", "joignable";
    CtScoreRange => "{} must be a whole number from 0 to 100 (got {}).", "{} doit être un nombre entier de 0 à 100 (reçu : {}).";
    CtBadKey => "That is neither an email nor a client code.", "Ce n’est ni un e-mail ni un code client.";
    CtUnknown => "No contact {}.", "Aucun contact {}.";
    CtFindAnother => "Search the contacts", "Chercher parmi les contacts";
    CtNotFoundTitle => "Contact not found", "Contact introuvable";
    CtProfile => "Profile", "Profil";
    CtEmail => "Email", "E-mail";
    CtPurchases => "Purchases", "Achats";
    CtSpent => "{} · {} spent", "{} · {} dépensés";
    CtAddedBy => "added by {}", "ajoutée par {}";
    CtSms => "SMS", "SMS";
    CtSmsAllowed => "allowed", "autorisé";
    CtNoPhone => "no phone number", "pas de numéro de téléphone";
    CtWhySuppressed => "Why suppressed", "Pourquoi bloqué";
    CtSince => "{} since {}", "{} depuis le {}";
    CtScoreOverTime => "Score over time", "Évolution du score";
    CtScoreChartLabel => "The contact's score over time; the breakdown below lists every change", "Le score du contact au fil du temps ; le détail ci-dessous liste chaque changement";
    CtWhyScore => "Why this score", "Pourquoi ce score";
    CtWhen => "When", "Quand";
    CtCause => "Cause", "Cause";
    CtChange => "Change", "Variation";
    CtStart => "start", "départ";
    CtFormula => "formula at creation", "formule à la création";
    CtByHand => "set by hand or import", "réglé à la main ou par import";
    CtNow => "Now", "Maintenant";
    CtWhyScores => "Why these scores", "Pourquoi ces scores";
    CtPoints => "Points", "Points";
    CtPending => "Pending actions", "Actions en attente";
    CtNothingWaiting => "Nothing waiting.", "Rien en attente.";
    CtDue => "due {}", "prévue le {}";
    CtSkippedByPressure => "Skipped by contact pressure", "Sautées à cause de la pression commerciale";
    CtSkipped => "skipped: {}", "sautée : {}";
    CtCapWindows => "Messages in the current cap windows", "Messages dans les fenêtres de plafond en cours";
    CtCapUse => "{} of {}", "{} sur {}";
    CtInDays => " in {} days", " en {} jours";
    CtCapFull => " — full; the next slot frees {}", " — plein ; la prochaine place se libère le {}";
    CtTimeline => "Timeline", "Chronologie";
    CtToTrigger => " → trigger ", " → déclencheur ";
    CtHappened => "happened {}", "survenu le {}";
    CtReceived => "received {}", "reçu le {}";
    CtFromEvent => "(recorded from the event)", "(tiré de l’événement)";
    CtHandOrImport => "(by hand or import)", "(à la main ou par import)";
    CtNoEvents => "No events yet.", "Aucun événement pour l’instant.";
    // Follow-up runs.
    RnTitle => "Follow-up runs", "Séquences de relance";
    RnNoneForRule => "No rule started a run in the last 30 days. A rule with a goal, a reentry policy or a skip_if starts one each time it fires.", "Aucune règle n’a lancé de séquence ces 30 derniers jours. Une règle avec un objectif, une politique de réentrée ou un skip_if en lance une à chaque déclenchement.";
    Rn30Days => "30 days", "30 jours";
    RnEntered => "Entered", "Entrées";
    RnActive => "Active", "En cours";
    RnGoalReached => "Goal reached", "Objectif atteint";
    RnCompleted => "Completed", "Terminées";
    RnCancelled => "Cancelled", "Annulées";
    RnGoalRate => "Goal rate", "Taux d’objectif";
    RnGoalRateHint => "Goal rate: runs that reached their goal among those that ended. Runs are counted by the day they started.", "Taux d’objectif : séquences ayant atteint leur objectif parmi celles terminées. Comptées au jour de leur début.";
    RnNoneForContact => "No run in the last 90 days.", "Aucune séquence ces 90 derniers jours.";
    RnStarted => " started {}", " commencée le {}";
    RnEnded => " · ended {}", " · finie le {}";
    // Rules.
    RuReplaced => "Version {} came from {} when the server started, and replaced version {}, which had been activated from {}. The rules file had changed since it was last imported.", "La version {} vient de {} au démarrage du serveur et a remplacé la version {}, activée depuis {}. Le fichier de règles avait changé depuis son dernier import.";
    RuPutBack => "Put version {} back in force?", "Remettre la version {} en vigueur ?";
    RuRollBackTo => "Roll back to version {}", "Revenir à la version {}";
    RuInForce => "is in force · {} rules · hash {}", "en vigueur · {} règles · empreinte {}";
    RuRulesInForce => "Rules in force", "Règles en vigueur";
    RuTrigger => "Trigger", "Déclencheur";
    RuPriority => "Priority", "Priorité";
    RuConditions => "Conditions", "Conditions";
    RuHits24h => "Hits 24 h", "Déclenchements 24 h";
    RuHits7d => "Hits 7 days", "Déclenchements 7 jours";
    RuKillSwitch => "Kill switch", "Arrêt d’urgence";
    RuDisabled => "disabled", "désactivée";
    RuPausedSince => "paused since {}", "en pause depuis le {}";
    RuResumeConfirm => "Resume {}? Its held jobs run when due.", "Reprendre {} ? Ses actions retenues partiront à leur heure.";
    RuResume => "Resume", "Reprendre";
    RuPauseConfirm => "Pause {}? It fires no more and its pending jobs are held.", "Mettre {} en pause ? Elle ne se déclenche plus et ses actions en attente sont retenues.";
    RuPause => "Pause", "Mettre en pause";
    RuEdit => "Edit (TOML)", "Modifier (TOML)";
    RuEditHint => "Checked as you type. Backtest the change against the stored events, then activate it: it becomes a new version, in force on every instance within seconds.", "Vérifié pendant la saisie. Testez le changement sur les événements enregistrés, puis activez-le : il devient une nouvelle version, en vigueur sur chaque instance en quelques secondes.";
    RuEditorLabel => "Rule set in TOML", "Jeu de règles en TOML";
    RuNotChanged => "Not changed.", "Pas de changement.";
    RuCancelRemoved => " Cancel the active runs of rules this version removes or disables (otherwise they go on to their end)", " Annuler les séquences en cours des règles que cette version retire ou désactive (sinon elles vont à leur terme)";
    RuBacktest => "Backtest against history", "Tester sur l’historique";
    RuActivate => "Activate", "Activer";
    RuVersions => "Versions", "Versions";
    RuVersion => "Version", "Version";
    RuSaved => "Saved", "Enregistrée";
    RuFrom => "From", "Origine";
    RuHash => "Hash", "Empreinte";
    RuInForceState => "in force", "en vigueur";
    RuRollBackThis => "Roll back to this", "Revenir à celle-ci";
    RuNoVersion => "No stored version yet.", "Aucune version enregistrée pour l’instant.";
    RuFromApi => "the API", "l’API";
    RuFromDashboard => "the dashboard", "le tableau de bord";
    RuFromDefaults => "the built-in defaults", "les règles par défaut";
    RuFromFile => "rules file {}", "le fichier de règles {}";
    RuRollbackFailed => "The rollback did not go through; try again.", "Le retour en arrière n’a pas abouti ; réessayez.";
    RuNoRule => "No rule {} in force.", "Aucune règle {} en vigueur.";
    // Actions.
    AxDeferred => "deferred (pending, held by contact pressure)", "reportées (en attente, retenues par la pression commerciale)";
    AxShowingLatest => "Showing the latest {}; narrow the filters to see others.", "Les {} plus récentes ; affinez les filtres pour voir les autres.";
    AxDue => "Due", "Prévue";
    AxAttempts => "Attempts", "Tentatives";
    AxLastError => "Last error", "Dernière erreur";
    AxNoMatch => "No actions match.", "Aucune action ne correspond.";
    AxNoActionsYet => "No actions yet: rules create them when they fire.", "Aucune action pour l’instant : les règles en créent en se déclenchant.";
    AxUnknownState => "Unknown state {}; choose one of {}, deferred.", "État inconnu {} ; choisissez parmi {}, deferred.";
    AxUnknownType => "Unknown action type {}.", "Type d’action inconnu {}.";
    AxUnknown => "No action {}.", "Aucune action {}.";
    AxTriggerOf => "{} (trigger {})", "{} (déclencheur {})";
    AxIdempotency => "Idempotency key", "Clé d’idempotence";
    AxConfiguration => "Configuration", "Configuration";
    AxStarted => "Started", "Début";
    AxOutcome => "Outcome", "Issue";
    AxResponse => "Response", "Réponse";
    AxNotAttempted => "Not attempted yet.", "Pas encore tentée.";
    AxTitle => "{} for {}", "{} pour {}";
    // Users and keys.
    UkKeyCreated => "Key {} created with the {} role. Copy it now: it is not shown again.", "Clé {} créée avec le rôle {}. Copiez-la maintenant : elle ne sera plus affichée.";
    UkUserAdded => "User {} added as {}.", "Utilisateur {} ajouté en tant que {}.";
    UkPasswordOnce => "Password (give it to them; it is not shown again): ", "Mot de passe (à lui transmettre ; il ne sera plus affiché) : ";
    UkApiKeys => "API keys", "Clés d’API";
    UkKeysHint => "For programs: Power Automate (role editor), the website's event script (role ingest, which opens /webhook/* only), a reporting tool (viewer).", "Pour les programmes : Power Automate (rôle editor), le script d’événements du site (rôle ingest, qui n’ouvre que /webhook/*), un outil de reporting (viewer).";
    UkPrefix => "Prefix", "Préfixe";
    UkLastUsed => "Last used", "Dernier usage";
    UkCreatedBy => "{} by {}", "{} par {}";
    UkRevoked => "revoked {}", "révoquée le {}";
    UkLive => "live", "active";
    UkRevoke => "Revoke", "Révoquer";
    UkRevokeLabel => "Revoke {}", "Révoquer {}";
    UkCreateKey => "Create a key", "Créer une clé";
    UkCreateKeyButton => "Create key", "Créer la clé";
    UkUsers => "Users", "Utilisateurs";
    UkDisabled => "disabled", "désactivé";
    UkLockedUntil => "locked until {}", "bloqué jusqu’au {}";
    UkActive => "active", "actif";
    UkEnable => "enable", "réactiver";
    UkDisable => "disable", "désactiver";
    UkAddUser => "Add a user", "Ajouter un utilisateur";
    UkAddUserButton => "Add user", "Ajouter";
    UkPasswordHint => "A password is generated and shown once. Passwords can also be set with relance users passwd.", "Un mot de passe est généré et affiché une fois. On peut aussi le définir avec relance users passwd.";
    UkPickRole => "Pick a role from the list.", "Choisissez un rôle dans la liste.";
    UkNotYourself => "You cannot disable yourself: ask another admin.", "Vous ne pouvez pas vous désactiver vous-même : demandez à un autre administrateur.";
    // Audit.
    AuTitle => "Audit log", "Journal d’audit";
    AuActor => "Actor", "Auteur";
    AuKind => "Kind", "Type";
    AuAll => "all", "tous";
    AuNothing => "Nothing recorded yet for this filter.", "Rien d’enregistré pour ce filtre.";
    AuWho => "Who", "Qui";
    AuFrom => "From", "Depuis";
    AuWhat => "What", "Quoi";
    AuSubject => "Subject", "Objet";
    AuSummary => "Summary", "Résumé";
    AuOlder => "Older entries", "Entrées plus anciennes";
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
    StateDeferred => "deferred", "reporté";
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
        "deferred" => T::StateDeferred,
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
    fn every_text_the_page_scripts_ask_for_is_in_the_catalogue() {
        let script = include_str!("assets/app.js");
        let known: std::collections::HashSet<&str> = T::ALL.iter().map(|k| k.name()).collect();
        let mut asked = 0;
        for call in ["tx(\"", "txf(\""] {
            for (i, _) in script.match_indices(call) {
                let rest = &script[i + call.len()..];
                let name = &rest[..rest.find('"').expect("a closed string")];
                assert!(known.contains(name), "app.js asks for {name:?}, which the catalogue lacks");
                asked += 1;
            }
        }
        // Keys listed in arrays (headers, summaries) are checked too.
        for (i, _) in script.match_indices("\"Js") {
            let rest = &script[i + 1..];
            let name = &rest[..rest.find('"').expect("a closed string")];
            assert!(known.contains(name), "app.js names {name:?}, which the catalogue lacks");
        }
        assert!(asked > 20, "the scan found the script's texts ({asked})");
    }

    #[test]
    fn blanks_are_filled_in_order() {
        assert_eq!(fill("{} of {}", &[&1, &"two"]), "1 of two");
        assert_eq!(fill("{} and {}", &[&1]), "1 and {}");
    }
}
