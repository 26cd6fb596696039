// Every text the client shows, in Swedish as in the administrators' manual. Another language
// is a copy of this file with the same keys, imported instead of this one at the top of app.js.
export default {
  lang: "sv",
  appTitle: "Administrera behörigheter för e-tjänster",
  loading: "Hämtar …",

  // 3.1 Logga in
  loginHeading: "Logga in",
  loginIntro:
    "Sätt i ditt SITHS-kort och logga in. Du loggar in med din e-tjänstelegitimation och administrerar behörigheter för din egen organisation.",
  loginButton: "Logga in med SITHS-kort",
  loginProblemHeading: "Vid problem att logga in",
  loginProblemAdvice: [
    "Försök några gånger med ett par minuters mellanrum.",
    "Kontrollera giltighetsdatum på kortet.",
    "Kontrollera att tjänstelegitimationen är ren och att den sitter korrekt i läsaren. Om det är en extern kortläsare, kontrollera även att läsaren är ansluten till datorn.",
    "Starta om webbläsaren (stäng samtliga flikar) och försök igen.",
    "Läs in tjänstelegitimationen på nytt: högerklicka på ikonen för Net iD i aktivitetsfältet och välj ”Läs in kortet på nytt”.",
    "Om felet kvarstår, mejla Migrationsverkets kontaktcenter.",
  ],
  demoHeading: "Demoläge: välj en demoadministratör",
  demoIntro:
    "Servern körs i demoläge på den här datorn. Logga in som en av demoorganisationernas administratörer utan SITHS-kort.",
  demoLoginAs: (name, organisation) => `Logga in som ${name}, ${organisation}`,
  kinds: { kommun: "kommun", region: "region" },
  loggedOut: "Du är utloggad.",
  sessionExpired: "Du är inte inloggad, eller så har sessionen gått ut. Logga in igen.",

  // 4, 4.8 Sidhuvud
  loggedInAs: "Inloggad som:",
  logout: "Logga ut",

  // 4 Användarlistan
  usersHeading: "Användare",
  addUser: "Lägg till användare",
  filterServices: "Filtrera e-tjänster",
  filterPermissions: "Filtrera behörigheter",
  filterPermissionsEmpty: "Välj först en eller flera e-tjänster under ”Filtrera e-tjänster”.",
  clearFilters: "Rensa filter",
  search: "Sök",
  searchHint: "Sök på valfritt tecken eller ord i förnamn, efternamn, HSA-id eller e-post.",
  columns: { givenName: "Förnamn", familyName: "Efternamn", hsaId: "HSA-id", email: "E-post" },
  sortAscending: (column) => `Sortera på ${column}, stigande`,
  sortDescending: (column) => `Sortera på ${column}, fallande`,
  noUsers: "Inga användare matchar.",
  noUsersAtAll: "Organisationen har inga användare ännu.",
  showing: (first, last, total) =>
    total === 0 ? "" : `Visar ${first}–${last} av ${total} användare`,
  previous: "Föregående",
  next: "Nästa",
  listCaption: "Användare i organisationen",

  // 4.4, 4.6 Dialogerna
  newUserHeading: "Lägg till användare",
  editUserHeading: "Ändra användare",
  fields: { givenName: "Förnamn", familyName: "Efternamn", hsaId: "HSA-id", email: "E-post", groupName: "Namn" },
  required: "(obligatoriskt)",
  save: "Spara",
  cancel: "Avbryt",
  missing: {
    givenName: "Fyll i förnamn.",
    familyName: "Fyll i efternamn.",
    hsaId: "Fyll i HSA-id.",
    email: "Fyll i e-post.",
  },
  invalidHsaId:
    "HSA-id ska vara SE, tio siffror, ett bindestreck och sedan bokstäver eller siffror, till exempel SE2120000142-1234 (högst 31 tecken).",
  invalidEmail: "Ange en giltig e-postadress, till exempel fornamn.efternamn@kommun.se.",
  takenHsaId: "HSA-id:t används redan av en annan användare i organisationen.",
  tooLong: "Texten är för lång.",
  tooLongAt: (limit) => `Högst ${limit} tecken.`,
  nameTooLong: (limit) => `Förnamn och efternamn får tillsammans vara högst ${limit - 1} tecken.`,
  formHasErrors: "Rätta de markerade fälten.",
  userCreated: (name) => `${name} är sparad. Lägg nu till behörigheter för användaren.`,
  userSaved: "Användaruppgifterna är sparade.",

  // 4.5 Användarvyn
  backToUsers: "Tillbaka till användare",
  userDetails: "Användaruppgifter",
  detailColumns: { name: "Namn", hsaId: "HSA-id", email: "E-post" },
  editUser: "Ändra användaruppgifter",
  currentPermissions: "Aktuella behörigheter",
  noPermissions: "Användaren har inga behörigheter ännu.",
  viaGroup: (group) => `via gruppen ${group}`,
  retired: "utgången",
  editPermissions: "Ändra och lägg till behörigheter",
  deleteUser: "Ta bort användare",
  userNotFound: "Användaren finns inte. Den kan ha tagits bort.",

  // 4.5 Ändra och lägg till behörigheter
  backToUserDetails: "Tillbaka till användaruppgifter",
  backToServices: "Tillbaka till behörigheter",
  chooseService: "Välj tjänst hos Migrationsverket",
  noAgreements: "Organisationen har inget avtal för någon e-tjänst.",
  changePermissionsHeading: "Ändra eller lägg till behörigheter",
  choosePermissions: "Välj behörighet för användaren",
  fromGroupCannotUntick: (group) =>
    `via gruppen ${group}; tas bort i gruppen, inte här`,
  done: "Klar",
  leaveUnsaved: "Du har ändrat behörigheter utan att klicka på Klar. Vill du lämna sidan utan att spara?",
  permissionsSaved: "Behörigheterna är sparade.",

  // 4.7 Ta bort
  deleteHeading: "Ta bort användare",
  deleteQuestion: (name, hsaId) => `Vill du ta bort ${name} (${hsaId})? Det går inte att ångra.`,
  ok: "OK",
  userDeleted: (name) => `${name} är borttagen.`,

  // Grupper
  navigation: "Huvudmeny",
  groupsHeading: "Grupper",
  groupColumns: { name: "Namn", members: "Medlemmar", permissions: "Behörigheter" },
  searchGroups: "Sök grupp",
  searchGroupsHint: "Sök på valfritt tecken eller ord i gruppens namn.",
  noGroups: "Inga grupper matchar.",
  noGroupsAtAll: "Organisationen har inga grupper ännu. Grupper kommer från organisationens identitetssystem.",
  showingGroups: (first, last, total) =>
    total === 0 ? "" : `Visar ${first}–${last} av ${total} grupper`,
  groupsCaption: "Grupper i organisationen",
  backToGroups: "Tillbaka till grupper",
  backToGroup: "Tillbaka till gruppen",
  groupNotFound: "Gruppen finns inte. Den kan ha tagits bort.",
  provisionedGroup:
    "Gruppen kommer från organisationens identitetssystem: namn och medlemmar ändras där. Vilka behörigheter gruppen ger bestämmer du här.",
  groupPermissions: "Behörigheter som gruppen ger",
  groupPermissionsHint: "Alla medlemmar i gruppen har de här behörigheterna.",
  noGroupPermissions: "Gruppen ger inga behörigheter ännu.",
  choosePermissionsForGroup: "Välj behörighet för gruppen",
  groupMembers: "Medlemmar",
  addGroup: "Lägg till grupp",
  newGroupHeading: "Lägg till grupp",
  missingGroupName: "Fyll i gruppens namn.",
  takenGroupName: "Det finns redan en grupp med det namnet i organisationen.",
  groupCreated: (name) => `Gruppen ${name} är sparad. Lägg nu till medlemmar och behörigheter.`,
  deleteGroup: "Ta bort grupp",
  deleteGroupHeading: "Ta bort grupp",
  deleteGroupQuestion: (name) =>
    `Vill du ta bort gruppen ${name}? Medlemmarna finns kvar men får inte längre gruppens behörigheter. Det går inte att ångra.`,
  groupDeleted: (name) => `Gruppen ${name} är borttagen.`,
  addMember: "Lägg till medlem",
  addMemberNamed: (name) => `Lägg till ${name} i gruppen`,
  addMemberHeading: "Lägg till medlem",
  memberSearchHint: "Sök på förnamn, efternamn eller HSA-id.",
  memberAdded: (name) => `${name} är tillagd i gruppen.`,
  removeMember: "Ta bort ur gruppen",
  removeMemberNamed: (name) => `Ta bort ${name} ur gruppen`,
  removeMemberHeading: "Ta bort ur gruppen",
  removeMemberQuestion: (name, group) =>
    `Vill du ta bort ${name} ur gruppen ${group}? ${name} får då inte längre gruppens behörigheter.`,
  memberRemoved: (name) => `${name} är borttagen ur gruppen.`,
  membersCaption: "Medlemmar i gruppen",
  noMembers: "Gruppen har inga medlemmar.",
  showingMembers: (first, last, total) =>
    total === 0 ? "" : `Visar ${first}–${last} av ${total} medlemmar`,

  // Exportera
  exportList: "Exportera",
  exporting: "Exporterar listan …",
  exported: (count) => `Listan är exporterad: ${count} användare.`,
  exportFile: (organisation) => `Behörigheter ${organisation}.csv`,
  exportColumns: ["Förnamn", "Efternamn", "HSA-id", "E-post", "Behörigheter"],

  // Historik
  historyHeading: "Historik",
  historyColumns: ["När", "Vem", "Vad"],
  noHistory: "Ingen ändring är registrerad.",
  actions: { create: "Skapad", replace: "Ändrad", patch: "Ändrad", delete: "Borttagen" },
  attributeNames: {
    userName: "användarnamn",
    name: "namn",
    givenName: "förnamn",
    familyName: "efternamn",
    displayName: "visningsnamn",
    emails: "e-post",
    active: "aktiv",
    hsaId: "HSA-id",
    permissions: "behörigheter",
    members: "medlemmar",
    externalId: "externt id",
    title: "titel",
    manager: "chef",
  },

  // Tillgänglighetsredogörelse (DIGG:s mall för lagen om tillgänglighet till digital offentlig service)
  accessibilityStatement: "Tillgänglighetsredogörelse",
  statement: [
    [
      "Om tjänsten",
      "Migrationsverket står bakom den här tjänsten, där kommuner och regioner administrerar sina medarbetares behörigheter i Migrationsverkets e-tjänster. Vi vill att så många som möjligt ska kunna använda den. Här beskriver vi hur tjänsten uppfyller lagen (2018:1937) om tillgänglighet till digital offentlig service, kända brister och hur du kan rapportera problem.",
    ],
    [
      "Hur tillgänglig är tjänsten?",
      "Tjänsten är förenlig med lagen: den uppfyller kraven i WCAG 2.1 på nivå AA, och även de nya kraven i WCAG 2.2 på nivå AA.",
      "Allt går att göra med enbart tangentbord, sidan fungerar med skärmläsare och förstoring, och varje vy har en egen rubrik och sidtitel.",
    ],
    [
      "Kända brister",
      "Vi känner inte till några brister just nu. Om du hittar en vill vi gärna veta det.",
    ],
    [
      "Vad kan du göra om du inte kan använda delar av tjänsten?",
      "Kontakta Migrationsverkets kontaktcenter, så hjälper vi dig att göra det du behöver på annat sätt eller ändrar behörigheterna åt dig.",
    ],
    [
      "Rapportera brister i tjänstens tillgänglighet",
      "Kontakta Migrationsverkets kontaktcenter och beskriv vad som inte fungerar. Vi svarar inom två arbetsdagar.",
    ],
    [
      "Tillsyn",
      "Myndigheten för digital förvaltning (Digg) har ansvaret för tillsynen över lagen. Om du inte är nöjd med hur vi hanterar dina synpunkter kan du kontakta Digg och påtala det (digg.se/tdosanmalan).",
    ],
    [
      "Hur vi testat tjänsten",
      "Vi testar tjänsten vid varje ändring: ett automatiskt test med axe-core mot alla vyer och dialoger (WCAG 2.0, 2.1 och 2.2, nivå A och AA) och ett test som går igenom alla arbetsmoment med enbart tangentbord.",
      "Redogörelsen uppdaterades den 5 december 2026.",
    ],
  ],

  // Fel
  staleEdit:
    "Användaren har ändrats av någon annan sedan du öppnade den. Dina ändringar är inte sparade. Ladda om för att se de senaste uppgifterna och gör ändringen igen.",
  reload: "Ladda om",
  forbidden: "Du har inte behörighet att göra det här.",
  notGrantable: "En eller flera behörigheter kan inte ges av din organisation.",
  serverError: "Något gick fel. Försök igen om en stund.",
  serverSaid: "Serverns svar:",
  // A Swedish text for every refusal, by SCIM error type (RFC 7644 §3.12), else by status.
  refused: {
    invalidValue: "Servern godtog inte uppgifterna. Kontrollera dem och försök igen.",
    uniqueness: "Det finns redan en användare eller grupp med de uppgifterna i organisationen.",
    mutability: "Den uppgiften går inte att ändra.",
    invalidFilter: "Sökningen gick inte att göra. Ändra sökorden och försök igen.",
    invalidSyntax: "Servern förstod inte ändringen. Ladda om sidan och försök igen.",
    tooMany: "Ändringen är för stor för en gång. Gör den i flera steg.",
    400: "Servern godtog inte ändringen.",
    403: "Du har inte behörighet att göra det här.",
    404: "Det du ville ändra finns inte längre. Det kan ha tagits bort.",
    409: "Ändringen krockar med organisationens andra uppgifter.",
    412: "Någon annan har ändrat uppgifterna sedan du öppnade dem. Ladda om och försök igen.",
    413: "Ändringen är för stor för en gång. Gör den i flera steg.",
    429: "Servern har många förfrågningar just nu. Vänta en stund och försök igen.",
    503: "Tjänsten är tillfälligt otillgänglig. Försök igen om en stund.",
    other: "Servern godtog inte ändringen.",
  },
  networkError: "Servern svarar inte. Kontrollera anslutningen och försök igen.",
};
