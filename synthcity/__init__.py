"""A deterministic synthetic City of Stockholm: the districts' elderly-care units and officers
(`synthcity.city`), their care recipients (`synthcity.people`), and the directory service's CSV import
files (`synthcity.directory_csv`). The same seed gives the same city, byte for byte, everywhere.
"""
