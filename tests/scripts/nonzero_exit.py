
print("about to fail")
raise ValueError("model blew up")
