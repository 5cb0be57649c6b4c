// Runs once, when the MongoDB data volume is empty (docker-entrypoint-initdb.d).
// Creates the application users defined in mongo_users.json, the file `cryptobot up` also
// reads for its embedded store (cryptobot_core/launcher/mongo_users.json, mounted by
// docker-compose.yml at $CRYPTOBOT_MONGO_USERS_FILE), so the two deployments cannot drift:
//   - the app user (readWrite): Dagster assets and the stream consumer write candles;
//   - the read-only user (read): the API only reads.
// Each role is granted on the database and its "_sim" twin. Names and passwords come from
// the environment (see .env.example); nothing is inline.
const fs = require("fs");
const usersFile = process.env.CRYPTOBOT_MONGO_USERS_FILE;
if (!usersFile) {
  throw new Error("CRYPTOBOT_MONGO_USERS_FILE is not set; see docker-compose.yml");
}
const definitions = JSON.parse(fs.readFileSync(usersFile, "utf8"));
const dbName = process.env.CRYPTOBOT_MONGO_DB || "cryptobot";
const databases = [dbName, dbName + "_sim"];
for (const user of definitions.users) {
  if (!process.env[user.password_env]) {
    throw new Error(user.password_env + " is not set; see .env.example");
  }
}
const admin = db.getSiblingDB("admin");
for (const user of definitions.users) {
  const name = process.env[user.name_env] || user.default_name;
  admin.createUser({
    user: name,
    pwd: process.env[user.password_env],
    roles: databases.map((database) => ({ role: user.role, db: database })),
  });
  print("cryptobot: created user " + name + " (" + user.role + " on " + databases.join(", ") +
        ") for " + user.used_by);
}
